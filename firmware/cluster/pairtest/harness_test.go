package pairtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

const (
	helperEnv = "NVR_PAIRTEST_HELPER"
	argsEnv   = "NVR_PAIRTEST_ARGS"
	apiPort   = "8443"
	token     = "pairtest-admin-token"
	// framePeriod is the simulator's video frame period (25 fps).
	framePeriod = 40 * time.Millisecond
)

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Getenv(argsEnv)))
	}
	code := m.Run()
	builds.cleanup()
	os.Exit(code)
}

// buildCache builds nvrd once per version stamp.
type buildCache struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

var builds = &buildCache{bins: map[string]string{}}

func (b *buildCache) cleanup() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// nvrd returns the path of an nvrd binary stamped with version.
func nvrd(t *testing.T, version string) string {
	t.Helper()
	b := builds
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.bins[version]; ok {
		return p
	}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "nvr-pairtest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		b.dir = d
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	p := filepath.Join(b.dir, "nvrd-"+version)
	cmd := exec.Command("go", "build", "-o", p, "-ldflags", "-X main.version="+version+" -X main.buildID=pairtest", "./firmware/cmd/nvrd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build nvrd %s: %v\n%s", version, err, out)
	}
	t.Logf("built nvrd %s in %s", version, time.Since(start).Round(time.Millisecond))
	b.bins[version] = p
	return p
}

// node is one data node of the pair.
type node struct {
	name string
	dir  string
	bin  string // the nvrd it runs
	proc *rig.Proc
	mac  string
}

func (n *node) store() string   { return filepath.Join(n.dir, "store") }
func (n *node) logPath() string { return filepath.Join(n.dir, "nvrd.log") }

// pair is a rig with the witness, the camera simulator, the VMS and two
// data nodes.
type pair struct {
	t       *testing.T
	r       *rig.Rig
	dir     string
	cams    []string
	peers   string
	nodes   map[string]*node
	witness *rig.Proc
	camsim  *rig.Proc
	vms     *rig.Proc
	self    string
	extra   []string // more nvrd run flags (tests)
}

// newPair builds the rig, pairs the nodes, formats both volumes, and starts
// the simulator with cams cameras, the witness and the VMS (not the nodes).
func newPair(t *testing.T, cams int, version string) *pair {
	t.Helper()
	r := rig.New(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := nvrd(t, version)
	p := &pair{t: t, r: r, dir: t.TempDir(), nodes: map[string]*node{}, self: self}
	names := []string{rig.Primary, rig.Standby, rig.Witness}
	bs, err := pairing.Pair(names)
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for i, n := range names {
		d := filepath.Join(p.dir, n)
		if err := bs[i].Save(filepath.Join(d, "cluster")); err != nil {
			t.Fatal(err)
		}
		s := n + "=" + rig.LANAddr[n] + ":7100"
		if n == rig.Witness {
			s += "/witness"
		}
		peers = append(peers, s)
		if n == rig.Witness {
			continue
		}
		nd := &node{name: n, dir: d, bin: bin}
		if out, err := exec.Command(bin, "store", "format", "--data", nd.store(), "--size", "256M").CombinedOutput(); err != nil {
			t.Fatalf("format %s: %v\n%s", n, err, out)
		}
		mac, err := exec.Command("ip", "netns", "exec", r.NS(n), "cat", "/sys/class/net/lan0/address").Output()
		if err != nil {
			t.Fatal(err)
		}
		nd.mac = strings.TrimSpace(string(mac))
		p.nodes[n] = nd
	}
	p.peers = strings.Join(peers, ",")
	for i := 1; i <= cams; i++ {
		p.cams = append(p.cams, fmt.Sprintf("cam%03d", i))
	}
	p.camsim = r.Start(rig.Camera, "camsim", nil, prio(bin, "camsim", "--listen", rig.LANAddr[rig.Camera]+":8554", "--no-udp",
		"--paths", fmt.Sprint(cams), "--paths-spec", "h264", "--paths-prefix", "cam", "--log-level", "warn")...)
	wdir := filepath.Join(p.dir, rig.Witness)
	p.witness = r.Start(rig.Witness, "witness", nil, prio(bin, "witness", "--data", filepath.Join(wdir, "raft"), "--config", filepath.Join(wdir, "cluster"),
		"--bind", rig.LANAddr[rig.Witness]+":7100", "--peers", rig.Primary+"="+rig.LANAddr[rig.Primary]+":7100,"+rig.Standby+"="+rig.LANAddr[rig.Standby]+":7100", "--log-level", "warn")...)
	js, _ := json.Marshal(vmsArgs{Targets: map[string]string{
		rig.Primary: "https://" + rig.LANAddr[rig.Primary] + ":" + apiPort,
		rig.Standby: "https://" + rig.LANAddr[rig.Standby] + ":" + apiPort,
		"vip":       "https://" + rig.VIP + ":" + apiPort,
	}, Token: token, Interval: 200 * time.Millisecond, VIP: rig.VIP, Link: "lan0", ARPInterval: 20 * time.Millisecond})
	p.vms = r.Start(rig.Client, "vms", []string{helperEnv + "=vms", argsEnv + "=" + string(js)}, self)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range p.nodes {
				t.Logf("--- %s log (tail) ---\n%s", n.name, tailFile(n.logPath(), 8000))
			}
		}
	})
	return p
}

// start runs nvrd run on node n in cluster mode.
func (p *pair) start(n string) {
	p.t.Helper()
	nd := p.nodes[n]
	other := map[string]string{rig.Primary: rig.Standby, rig.Standby: rig.Primary}[n]
	args := []string{"run", "--data", nd.store(), "--api", ":" + apiPort, "--api-tls-dir", filepath.Join(nd.dir, "tls"),
		"--api-token", token, "--log-file", nd.logPath(), "--log-level", "info",
		"--cluster-dir", filepath.Join(nd.dir, "cluster"), "--cluster-peers", p.peers,
		"--heartbeat", "dedicated=" + rig.DedAddr[n] + ":7200/" + rig.DedAddr[other] + ":7200",
		"--heartbeat", "lan=" + rig.LANAddr[n] + ":7201/" + rig.LANAddr[other] + ":7201",
		"--vip", rig.VIP, "--vip-iface", "lan0"}
	for _, c := range p.cams {
		args = append(args, "--camera", c+"=rtsp://"+rig.LANAddr[rig.Camera]+":8554/"+c)
	}
	args = append(args, p.extra...)
	nd.proc = p.r.Start(n, n+"-nvrd", nil, prio(nd.bin, args...)...)
}

// up starts the primary (it wins with the witness), waits until it records,
// then starts the standby and waits until it mirrors.
func (p *pair) up() uint64 {
	p.t.Helper()
	p.start(rig.Primary)
	st := p.waitPoll(rig.Primary, time.Time{}, 30*time.Second, "primary is primary", func(s poll) bool { return s.Role == "primary" && s.Recording == len(p.cams) })
	p.start(rig.Standby)
	p.waitPoll(rig.Standby, time.Time{}, 30*time.Second, "standby mirrors", func(s poll) bool { return s.Role == "standby" && s.Connected && s.Batches > 0 })
	return st.Epoch
}

// polls returns the VMS's polls of target (a node name or "vip").
func (p *pair) polls(target string) []poll {
	var out []poll
	for _, l := range p.vms.Lines() {
		var s poll
		if json.Unmarshal([]byte(l.Text), &s) == nil && s.Target == target {
			out = append(out, s)
		}
	}
	return out
}

func (p *pair) arps() []poll { return p.polls("arp") }

// waitPoll returns the first poll of target at or after since matching f.
func (p *pair) waitPoll(target string, since time.Time, timeout time.Duration, what string, f func(poll) bool) poll {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range p.polls(target) {
			if !s.At().Before(since) && f(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			ps := p.polls(target)
			last := "none"
			if len(ps) > 0 {
				b, _ := json.Marshal(ps[len(ps)-1])
				last = string(b)
			}
			p.t.Fatalf("timed out after %v waiting for %s (%s); last poll %s", timeout, what, target, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// request runs one API request from the client namespace and returns the
// status code; the body goes to out ("" discards it).
func (p *pair) request(method, url, out string) (int, string) {
	p.t.Helper()
	js, _ := json.Marshal(httpArgs{Method: method, URL: url, Token: token, Out: out, Timeout: 90 * time.Second})
	pr := p.r.Start(rig.Client, "http", []string{helperEnv + "=http", argsEnv + "=" + string(js)}, p.self)
	for deadline := time.Now().Add(100 * time.Second); !pr.Exited(); {
		if time.Now().After(deadline) {
			pr.Kill()
			p.t.Fatalf("%s %s: no answer", method, url)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range pr.Lines() {
		var r httpResult
		if json.Unmarshal([]byte(l.Text), &r) == nil {
			if r.Err != "" {
				r.Body += " error: " + r.Err
			}
			return r.Code, r.Body
		}
	}
	p.t.Fatalf("%s %s: helper said nothing: %s", method, url, pr.Stderr())
	return 0, ""
}

// prio runs the pair's processes at a raised priority (nice -10; the
// tests run as root): the timings they measure are the pair's, not the
// starvation of a test machine busy with other builds and tests. "nice"
// execs in place, so the process's PID stays the one signalled.
func prio(bin string, args ...string) []string {
	return append([]string{"nice", "-n", "-10", bin}, args...)
}

// checkRoles fails the test when the roles moved before the fault the test
// injects (a false failover during setup: it reports the machine's load).
func (p *pair) checkRoles(epoch uint64) {
	p.t.Helper()
	for _, n := range []string{rig.Primary, rig.Standby} {
		ps := p.polls(n)
		for i := len(ps) - 1; i >= 0; i-- {
			if ps[i].Err != "" {
				continue
			}
			if ps[i].Role != n || ps[i].Epoch != epoch {
				load, _ := os.ReadFile("/proc/loadavg")
				p.t.Fatalf("roles moved before the fault: %s is %s under epoch %d (was epoch %d); load %s", n, ps[i].Role, ps[i].Epoch, epoch, strings.TrimSpace(string(load)))
			}
			break
		}
	}
}

// kill SIGKILLs node n and returns when it happened.
func (p *pair) kill(n string) time.Time {
	nd := p.nodes[n]
	at := time.Now()
	if err := nd.proc.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	nd.proc.Kill() // waits
	return at
}

var logTime = regexp.MustCompile(`^time=(\S+) `)

// logLine returns the time of the first line of n's log at or after since
// containing all of words.
func (p *pair) logLine(n string, since time.Time, words ...string) (time.Time, bool) {
	f, err := os.Open(p.nodes[n].logPath())
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
next:
	for sc.Scan() {
		l := sc.Text()
		m := logTime.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || at.Before(since) {
			continue
		}
		for _, w := range words {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		return at, true
	}
	return time.Time{}, false
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// holders returns, per ARP round after since, which nodes answered for the
// VIP: it fails the test when two answered in one round.
func (p *pair) checkOneHolder(since time.Time) (rounds, silent int) {
	p.t.Helper()
	for _, a := range p.arps() {
		if a.At().Before(since) {
			continue
		}
		rounds++
		if len(a.MACs) > 1 {
			p.t.Errorf("two VIP holders at %v: %v", a.At(), a.MACs)
		}
		if len(a.MACs) == 0 {
			silent++
		}
	}
	return rounds, silent
}

// firstARP returns the first ARP round after since answered by node n.
func (p *pair) firstARP(n string, since time.Time, timeout time.Duration) time.Time {
	p.t.Helper()
	mac := p.nodes[n].mac
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, a := range p.arps() {
			if !a.At().Before(since) && len(a.MACs) == 1 && a.MACs[0] == mac {
				return a.At()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("the VIP never answered from %s (%s)", n, mac)
	return time.Time{}
}
