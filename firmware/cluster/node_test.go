package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

// recorder is the role-following stub: it records role changes and
// takeover calls with their times, and fakes a VIP.
type recorder struct {
	mu     sync.Mutex
	id     string
	events []string
	roles  []RoleChange
	vip    bool
	vipEp  uint64
	onPrep func()
}

func (r *recorder) OnRole(c RoleChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roles = append(r.roles, c)
	r.events = append(r.events, fmt.Sprintf("%s:%s@%d", r.id, c.Role, c.Epoch))
}

func (r *recorder) Claim(epoch uint64, _ func() bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch < r.vipEp {
		return &StaleEpochError{What: "VIP claim", Got: epoch, Highest: r.vipEp}
	}
	r.vip, r.vipEp = true, epoch
	return nil
}

func (r *recorder) Release() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vip = false
	return nil
}

func (r *recorder) PrepareTakeover(context.Context) error {
	r.mu.Lock()
	r.events = append(r.events, r.id+":prepare")
	f := r.onPrep
	r.mu.Unlock()
	if f != nil {
		f()
	}
	return nil
}

func (r *recorder) AbortTakeover() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, r.id+":abort")
}

func (r *recorder) last() (RoleChange, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.roles) == 0 {
		return RoleChange{}, false
	}
	return r.roles[len(r.roles)-1], true
}

// trio is three in-process nodes on 127.0.0.1.
type trio struct {
	t       *testing.T
	peers   []Peer
	bundles map[string]*pairing.Bundle
	dirs    map[string]string
	recs    map[string]*recorder
	nodes   map[string]*Node
	stops   map[string]func()
	logs    *syncBuf
	timing  map[string]Timing
	canLead map[string]func() error
	hb      map[string]heartbeat.Options
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func newTrio(t *testing.T) *trio {
	t.Helper()
	addrs := freePorts(t, 3)
	peers := []Peer{{ID: "a", Addr: addrs[0]}, {ID: "b", Addr: addrs[1]}, {ID: "w", Addr: addrs[2], Witness: true}}
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	tr := &trio{t: t, peers: peers, bundles: map[string]*pairing.Bundle{}, dirs: map[string]string{}, recs: map[string]*recorder{},
		nodes: map[string]*Node{}, stops: map[string]func(){}, logs: &syncBuf{}, timing: map[string]Timing{}, canLead: map[string]func() error{}, hb: map[string]heartbeat.Options{}}
	for i, p := range peers {
		tr.bundles[p.ID] = bs[i]
		tr.dirs[p.ID] = t.TempDir()
	}
	t.Cleanup(func() {
		for _, stop := range tr.stops {
			stop()
		}
		if t.Failed() {
			t.Logf("node logs:\n%s", tr.logs.String())
		}
	})
	return tr
}

func (tr *trio) start(id string) {
	tr.t.Helper()
	rec := &recorder{id: id}
	tr.recs[id] = rec
	opts := Options{ID: id, Peers: tr.peers, Dir: tr.dirs[id], Pairing: tr.bundles[id], Timing: tr.timing[id],
		OnRole: rec.OnRole, Takeover: rec, CanLead: tr.canLead[id], Heartbeat: tr.hb[id],
		Logger: slog.New(slog.NewTextHandler(tr.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)}
	if id != "w" {
		opts.VIP = rec
	}
	n, err := New(opts)
	if err != nil {
		tr.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	tr.nodes[id] = n
	tr.stops[id] = func() {
		cancel()
		if err := <-done; err != nil {
			tr.t.Errorf("node %s: Run: %v", id, err)
		}
	}
}

func (tr *trio) stop(id string) {
	tr.stops[id]()
	delete(tr.stops, id)
}

// waitPrimary waits until some running node is primary with an epoch above
// after, and returns it.
func (tr *trio) waitPrimary(after uint64, timeout time.Duration) (string, uint64) {
	tr.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for id := range tr.stops {
			if r, e := tr.nodes[id].Role(); r == RolePrimary && e > after {
				return id, e
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatalf("no primary with epoch > %d within %v", after, timeout)
	return "", 0
}

func (tr *trio) primaries() []string {
	var out []string
	for id := range tr.stops {
		if r, _ := tr.nodes[id].Role(); r == RolePrimary {
			out = append(out, id)
		}
	}
	return out
}

func TestElectionPutsRoleOnDataNode(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		tr := newTrio(t)
		for _, id := range []string{"a", "b", "w"} {
			tr.start(id)
		}
		start := time.Now()
		id, epoch := tr.waitPrimary(0, 10*time.Second)
		t.Logf("first primary %s at epoch %d after %v", id, epoch, time.Since(start).Round(time.Millisecond))
		if id == "w" {
			t.Fatal("witness became primary")
		}
		if !tr.recs[id].vip {
			t.Fatal("primary does not hold the VIP")
		}
		time.Sleep(300 * time.Millisecond)
		if p := tr.primaries(); len(p) != 1 {
			t.Fatalf("primaries %v", p)
		}
		st := tr.nodes["w"].Status()
		if st.Role != "witness" || st.Primary != id || st.Epoch != epoch {
			t.Fatalf("witness status %+v", st)
		}
		for _, id := range []string{"a", "b", "w"} {
			tr.stop(id)
		}
	}()
	// Every goroutine a node started ends with Run (raft's own connection
	// goroutines included, within a grace period).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines leaked: %d before, %d after\n%s", base, g, buf[:runtime.Stack(buf, true)])
	}
}

// TestWitnessHandsOver gives the witness the shortest timeout so it wins
// the first election: it must hand leadership to a data node at once.
func TestWitnessHandsOver(t *testing.T) {
	tr := newTrio(t)
	tr.timing["w"] = Timing{HeartbeatTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond, DriftMargin: 50 * time.Millisecond}
	tr.timing["a"] = Timing{HeartbeatTimeout: 3 * time.Second}
	tr.timing["b"] = Timing{HeartbeatTimeout: 3 * time.Second}
	for _, id := range []string{"w", "a", "b"} {
		tr.start(id)
	}
	id, epoch := tr.waitPrimary(0, 10*time.Second)
	if id == "w" {
		t.Fatal("witness primary")
	}
	if !strings.Contains(tr.logs.String(), "handing leadership to a data node") {
		t.Fatalf("witness did not win first (timings); logs:\n%s", tr.logs.String())
	}
	t.Logf("witness handed over to %s, epoch %d", id, epoch)
}

func TestFailoverAndNoPreemption(t *testing.T) {
	tr := newTrio(t)
	for _, id := range []string{"a", "b", "w"} {
		tr.start(id)
	}
	old, e1 := tr.waitPrimary(0, 10*time.Second)
	standby := map[string]string{"a": "b", "b": "a"}[old]
	tr.stop(old)
	if tr.recs[old].vip {
		t.Fatal("stopped primary still holds the VIP")
	}
	start := time.Now()
	id, e2 := tr.waitPrimary(e1, 5*time.Second)
	took := time.Since(start)
	if id != standby {
		t.Fatalf("primary %s after failover, want %s", id, standby)
	}
	t.Logf("failover %s -> %s: epoch %d -> %d in %v", old, id, e1, e2, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Fatalf("failover took %v", took)
	}
	// The old primary returns: it joins as standby, no preemption.
	tr.start(old)
	time.Sleep(2 * time.Second)
	if p := tr.primaries(); len(p) != 1 || p[0] != id {
		t.Fatalf("after return, primaries %v, want [%s]", p, id)
	}
	if got := tr.nodes[old].Epoch(); got != e2 {
		t.Fatalf("returned node epoch %d, want %d", got, e2)
	}
}

// TestSwitchover checks make-before-break ordering: the standby prepares
// (sessions recording) before the transfer, and the old primary stops only
// after the new epoch is committed.
func TestSwitchover(t *testing.T) {
	for _, from := range []string{"primary", "standby"} {
		t.Run("from "+from, func(t *testing.T) {
			tr := newTrio(t)
			for _, id := range []string{"a", "b", "w"} {
				tr.start(id)
			}
			old, e1 := tr.waitPrimary(0, 10*time.Second)
			nw := map[string]string{"a": "b", "b": "a"}[old]
			var log []string
			var logMu sync.Mutex
			note := func(s string) { logMu.Lock(); log = append(log, s); logMu.Unlock() }
			tr.recs[nw].onPrep = func() {
				if r, _ := tr.nodes[old].Role(); r != RolePrimary {
					note("old primary stopped before prepare")
				}
				note("prepared")
			}
			caller := old
			if from == "standby" {
				caller = nw
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			if err := tr.nodes[caller].Switchover(ctx); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			r, e2 := tr.nodes[nw].Role()
			if r != RolePrimary || e2 <= e1 {
				t.Fatalf("new node role %s epoch %d (old epoch %d)", r, e2, e1)
			}
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				if c, ok := tr.recs[old].last(); ok && c.Role == RoleStandby {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			c, _ := tr.recs[old].last()
			if c.Role != RoleStandby || !c.Planned || c.Epoch < e2 {
				t.Fatalf("old primary's last role change %+v, want planned standby at epoch >= %d", c, e2)
			}
			nc, _ := tr.recs[nw].last()
			newStart := nc.At
			if c.At.Before(newStart) {
				t.Fatalf("old primary stopped at %v, before the new one was primary at %v", c.At, newStart)
			}
			logMu.Lock()
			defer logMu.Unlock()
			if len(log) != 1 || log[0] != "prepared" {
				t.Fatalf("order: %v", log)
			}
			t.Logf("switchover %s -> %s (called on the %s) in %v; overlap %v", old, nw, from, took.Round(time.Millisecond), c.At.Sub(newStart).Round(time.Millisecond))
		})
	}
}

func TestCannotLeadHandsOver(t *testing.T) {
	tr := newTrio(t)
	tr.canLead["a"] = func() error { return errors.New("store format 9 newer than this firmware's 1") }
	tr.timing["a"] = Timing{HeartbeatTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond, DriftMargin: 50 * time.Millisecond}
	for _, id := range []string{"a", "b", "w"} {
		tr.start(id)
	}
	id, _ := tr.waitPrimary(0, 10*time.Second)
	if id != "b" {
		t.Fatalf("primary %s, want b (a may not lead)", id)
	}
}

func TestTimingValidate(t *testing.T) {
	tests := []struct {
		name string
		t    Timing
		ok   bool
	}{
		{"defaults", Timing{}, true},
		{"lease too long", Timing{HeartbeatTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 450 * time.Millisecond}, false},
		{"margin eats the gap", Timing{HeartbeatTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond, DriftMargin: 300 * time.Millisecond}, false},
		{"election below heartbeat", Timing{HeartbeatTimeout: time.Second, ElectionTimeout: 500 * time.Millisecond}, false},
		{"tight but safe", Timing{HeartbeatTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond, DriftMargin: 50 * time.Millisecond}, true},
	}
	for _, tc := range tests {
		err := tc.t.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrTiming)) {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
	bs, _ := pairing.Pair([]string{"a"})
	_, err := New(Options{ID: "a", Dir: t.TempDir(), Pairing: bs[0], Timing: tests[1].t,
		Peers: []Peer{{ID: "a", Addr: "x:1"}, {ID: "b", Addr: "y:1"}, {ID: "w", Addr: "z:1", Witness: true}}})
	if !errors.Is(err, ErrTiming) {
		t.Fatalf("New with unsafe timing: %v", err)
	}
}

func TestCheckEpoch(t *testing.T) {
	var lb syncBuf
	bs, _ := pairing.Pair([]string{"a"})
	n, err := New(Options{ID: "a", Dir: t.TempDir(), Pairing: bs[0], Logger: slog.New(slog.NewTextHandler(&lb, nil)),
		Peers: []Peer{{ID: "a", Addr: "x:1"}, {ID: "b", Addr: "y:1"}, {ID: "w", Addr: "z:1", Witness: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.CheckEpoch("mirror batch", 7); err != nil {
		t.Fatal(err)
	}
	err = n.CheckEpoch("mirror batch", 6)
	var se *StaleEpochError
	if !errors.As(err, &se) || se.Got != 6 || se.Highest != 7 {
		t.Fatalf("stale epoch: %v", err)
	}
	if !strings.Contains(lb.String(), "refused message from an old epoch") {
		t.Fatalf("no log line: %s", lb.String())
	}
	if n.Epoch() != 7 {
		t.Fatalf("epoch %d", n.Epoch())
	}
}

func TestParsePeers(t *testing.T) {
	ps, err := ParsePeers("a=10.0.0.1:7000, b=10.0.0.2:7000,w=10.0.0.3:7000/witness")
	if err != nil || len(ps) != 3 || !ps[2].Witness || ps[2].Addr != "10.0.0.3:7000" {
		t.Fatalf("%+v %v", ps, err)
	}
	if got := FormatPeers(ps); got != "a=10.0.0.1:7000,b=10.0.0.2:7000,w=10.0.0.3:7000/witness" {
		t.Fatal(got)
	}
	for _, bad := range []string{"a", "=x", "a=x,a=y"} {
		if _, err := ParsePeers(bad); err == nil {
			t.Errorf("ParsePeers(%q) accepted", bad)
		}
	}
}

// TestForeignPairingRefused: a node holding another pairing's keys cannot
// make control calls or raft streams.
func TestForeignPairingRefused(t *testing.T) {
	tr := newTrio(t)
	tr.start("a")
	if err := tr.nodes["a"].WaitStarted(context.Background()); err != nil {
		t.Fatal(err)
	}
	other, _ := pairing.Pair([]string{"b"})
	sl, err := newStreamLayer("127.0.0.1:0", other[0].ServerConfig(), other[0].ClientConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sl.Close(); sl.wait() }()
	c, err := sl.dial(tr.peers[0].Addr, muxControl, time.Second)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("foreign pairing connected")
	}
}

func TestStatusText(t *testing.T) {
	s := Status{ID: "a", Role: "primary", Epoch: 4, Primary: "a", Members: []MemberStatus{{ID: "w", Witness: true}}}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node a: primary", "epoch 4", "member w", "witness"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestMirrorPath: the mirror ships over the dedicated link while its
// heartbeats arrive and falls back to the LAN when they do not. b's
// dedicated heartbeats go to a dead port, so a hears b only on the LAN.
func TestMirrorPath(t *testing.T) {
	tr := newTrio(t)
	u := udpPorts(t, 5)
	tr.hb["a"] = heartbeat.Options{Interval: 20 * time.Millisecond, Paths: []heartbeat.Path{{Name: "dedicated", Local: u[0], Peer: u[1]}, {Name: "lan", Local: u[2], Peer: u[3]}}}
	tr.hb["b"] = heartbeat.Options{Interval: 20 * time.Millisecond, Paths: []heartbeat.Path{{Name: "dedicated", Local: u[1], Peer: u[4]}, {Name: "lan", Local: u[3], Peer: u[2]}}}
	for _, id := range []string{"a", "b", "w"} {
		tr.start(id)
	}
	tr.waitPrimary(0, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	var pa, pb heartbeat.Path
	for time.Now().Before(deadline) {
		pa, _ = tr.nodes["a"].MirrorPath()
		pb, _ = tr.nodes["b"].MirrorPath()
		if pa.Name == "lan" && pb.Name == "dedicated" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pa.Name != "lan" || pb.Name != "dedicated" {
		t.Fatalf("mirror paths: a %q (want lan), b %q (want dedicated)", pa.Name, pb.Name)
	}
	if _, ok := tr.nodes["w"].MirrorPath(); ok {
		t.Fatal("witness has a mirror path")
	}
	st := tr.nodes["a"].Status()
	if st.Heartbeat == nil || st.Heartbeat.PeerID != "b" {
		t.Fatalf("a's heartbeat status: %+v", st.Heartbeat)
	}
}

func udpPorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var cs []*net.UDPConn
	for i := 0; i < n; i++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		out = append(out, c.LocalAddr().String())
	}
	for _, c := range cs {
		c.Close()
	}
	return out
}
