package rig

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Node names of the rig.
const (
	Primary = "primary"
	Standby = "standby"
	Witness = "witness"
	Camera  = "camera"
	Client  = "client"
	LAN     = "lan"
)

// Addresses of the rig.
var (
	LANAddr = map[string]string{Primary: "10.77.0.1", Standby: "10.77.0.2", Witness: "10.77.0.3", Camera: "10.77.0.4", Client: "10.77.0.5"}
	DedAddr = map[string]string{Primary: "10.78.0.1", Standby: "10.78.0.2"}
)

// VIP is the service address; VIP6 its IPv6 counterpart.
const (
	VIP  = "10.77.0.100"
	VIP6 = "fd77::100"
)

// LANAddr6 are the IPv6 LAN addresses (fd77::/64, no duplicate address
// detection in the rig).
var LANAddr6 = map[string]string{Primary: "fd77::1", Standby: "fd77::2", Witness: "fd77::3", Camera: "fd77::4", Client: "fd77::5"}

var rigSeq atomic.Int64

// Rig is one set of namespaces.
type Rig struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	procs  []*Proc
}

// Require checks that the rig can be built here: root, ip, nft, iptables
// and ping. Missing pieces fail the test under CI=true and skip it (with
// the reason) otherwise.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "nft", "iptables", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("namespace rig needs %s (run .ci/install-deps as root)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// New builds the rig. It calls Require first.
func New(t testing.TB) *Rig {
	t.Helper()
	Require(t)
	sweepStale(t)
	r := &Rig{t: t, prefix: fmt.Sprintf("nvrt%d-%d", os.Getpid(), rigSeq.Add(1))}
	t.Cleanup(r.destroy)
	r.mustRun("ip", "netns", "add", r.NS(LAN))
	r.nsRun(LAN, "ip", "link", "set", "lo", "up")
	r.nsRun(LAN, "ip", "link", "add", "br0", "type", "bridge")
	r.nsRun(LAN, "ip", "link", "set", "br0", "up")
	for _, n := range []string{Primary, Standby, Witness, Camera, Client} {
		r.mustRun("ip", "netns", "add", r.NS(n))
		r.nsRun(n, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
		r.nsRun(n, "ip", "link", "set", "lo", "up")
		port := "p-" + n[:3]
		r.mustRun("ip", "link", "add", "lan0", "netns", r.NS(n), "type", "veth", "peer", "name", port, "netns", r.NS(LAN))
		r.nsRun(LAN, "ip", "link", "set", port, "master", "br0")
		r.nsRun(LAN, "ip", "link", "set", port, "up")
		r.nsRun(n, "ip", "addr", "add", LANAddr[n]+"/24", "dev", "lan0")
		r.nsRun(n, "ip", "-6", "addr", "add", LANAddr6[n]+"/64", "dev", "lan0", "nodad")
		r.nsRun(n, "ip", "link", "set", "lan0", "up")
	}
	r.mustRun("ip", "link", "add", "ded0", "netns", r.NS(Primary), "type", "veth", "peer", "name", "ded0", "netns", r.NS(Standby))
	for _, n := range []string{Primary, Standby} {
		r.nsRun(n, "ip", "addr", "add", DedAddr[n]+"/30", "dev", "ded0")
		r.nsRun(n, "ip", "link", "set", "ded0", "up")
	}
	return r
}

// NS returns the namespace name of a rig node.
func (r *Rig) NS(node string) string { return r.prefix + "-" + node }

func (r *Rig) mustRun(args ...string) {
	r.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("rig: %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (r *Rig) nsRun(node string, args ...string) {
	r.t.Helper()
	r.mustRun(append([]string{"ip", "netns", "exec", r.NS(node)}, args...)...)
}

// Run runs a command inside a node's namespace and fails the test on error.
func (r *Rig) Run(node string, args ...string) {
	r.t.Helper()
	r.nsRun(node, args...)
}

// LinkDown cuts a node's interface (lan0 or ded0); LinkUp restores it.
func (r *Rig) LinkDown(node, ifname string) {
	r.t.Helper()
	r.nsRun(node, "ip", "link", "set", ifname, "down")
}

// LinkUp restores an interface cut by LinkDown.
func (r *Rig) LinkUp(node, ifname string) {
	r.t.Helper()
	r.nsRun(node, "ip", "link", "set", ifname, "up")
}

// Block drops everything a node sends to dst (IPv4) and accepts nothing
// from it, without touching other traffic.
func (r *Rig) Block(node, dst string) {
	r.t.Helper()
	r.ensureTable(node)
	r.nsRun(node, "nft", "add", "rule", "inet", "nvrrig", "out", "ip", "daddr", dst, "drop")
	r.nsRun(node, "nft", "add", "rule", "inet", "nvrrig", "in", "ip", "saddr", dst, "drop")
}

// Loss drops percent % of what a node sends on ifname, at random.
func (r *Rig) Loss(node, ifname string, percent int) {
	r.t.Helper()
	r.ensureTable(node)
	if percent >= 100 {
		r.nsRun(node, "nft", "add", "rule", "inet", "nvrrig", "out", "oifname", ifname, "drop")
		return
	}
	r.nsRun(node, "nft", "add", "rule", "inet", "nvrrig", "out", "oifname", ifname, "numgen", "random", "mod", "100", "<", fmt.Sprint(percent), "drop")
}

func (r *Rig) ensureTable(node string) {
	r.t.Helper()
	r.nsRun(node, "nft", "add", "table", "inet", "nvrrig")
	r.nsRun(node, "nft", "add", "chain", "inet", "nvrrig", "out", "{ type filter hook output priority 0; }")
	r.nsRun(node, "nft", "add", "chain", "inet", "nvrrig", "in", "{ type filter hook input priority 0; }")
}

// QueueOutput steers what a node sends on ifname to NFQUEUE queue (served
// by an nfdelay helper the caller starts in the same namespace; with
// --queue-bypass, packets pass undelayed while nobody serves the queue).
func (r *Rig) QueueOutput(node, ifname string, queue int) {
	r.t.Helper()
	r.nsRun(node, "iptables", "-A", "OUTPUT", "-o", ifname, "-j", "NFQUEUE", "--queue-num", fmt.Sprint(queue), "--queue-bypass")
}

// Proc is a process started in a namespace.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	// lines are stdout lines with their arrival time.
	lines  []Line
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// Line is one line of a process's standard output.
type Line struct {
	At   time.Time
	Text string
}

// Start runs args in a node's namespace; env is added to the environment.
func (r *Rig) Start(node, name string, env []string, args ...string) *Proc {
	r.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.NS(node)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{p: p}
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("rig: start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, Line{At: time.Now(), Text: sc.Text()})
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p
}

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.stderr.Len() < 4<<20 {
		w.p.stderr.Write(b)
	}
	return len(b), nil
}

// Lines returns the stdout lines so far.
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Stderr returns what the process wrote to stderr.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Pid is the process ID ("ip netns exec" execs the command in place).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to end (SIGTERM) and waits up to timeout before
// killing it.
func (p *Proc) Stop(timeout time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (r *Rig) destroy() {
	r.mu.Lock()
	procs := r.procs
	r.procs = nil
	r.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			p.Kill()
		}
		if r.t.Failed() {
			r.t.Logf("--- %s stderr (tail) ---\n%s", p.Name, tail(p.Stderr(), 6000))
		}
	}
	for _, n := range []string{Primary, Standby, Witness, Camera, Client, LAN} {
		out, err := exec.Command("ip", "netns", "del", r.NS(n)).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "No such file") {
			r.t.Errorf("rig cleanup: ip netns del %s: %v: %s", r.NS(n), err, out)
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// sweepStale deletes rig namespaces left by test processes that no longer
// exist (a test binary killed by its timeout runs no cleanup).
func sweepStale(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "nvrt")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // its test is still running
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("rig: could not delete stale namespace %s: %v: %s", name, err, out)
		} else {
			t.Logf("rig: deleted stale namespace %s", name)
		}
	}
}
