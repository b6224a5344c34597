package timesync

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is a real NTP server on 127.0.0.1 whose clock runs offset ahead of
// ours; behave can change each reply (nil: send it).
type server struct {
	conn   *net.UDPConn
	offset time.Duration
	behave func(req, reply []byte) [][]byte
	wg     sync.WaitGroup
}

func startServer(t *testing.T, offset time.Duration, behave func(req, reply []byte) [][]byte) *server {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{conn: c, offset: offset, behave: behave}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { c.Close(); s.wg.Wait() })
	return s
}

func (s *server) addr() string { return s.conn.LocalAddr().String() }

func (s *server) serve() {
	defer s.wg.Done()
	buf := make([]byte, 512)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req := append([]byte(nil), buf[:n]...)
		rx := time.Now().Add(s.offset)
		reply := make([]byte, PacketSize)
		reply[0] = 0<<6 | 4<<3 | 4
		reply[1] = 2
		binary.BigEndian.PutUint32(reply[4:], 0x00000800) // root delay 31 ms
		binary.BigEndian.PutUint32(reply[8:], 0x00000400) // root dispersion 15 ms
		copy(reply[24:32], req[40:48])                    // origin = our cookie
		binary.BigEndian.PutUint64(reply[32:], toTimestamp(rx))
		binary.BigEndian.PutUint64(reply[40:], toTimestamp(time.Now().Add(s.offset)))
		out := [][]byte{reply}
		if s.behave != nil {
			out = s.behave(req, reply)
		}
		for _, p := range out {
			_, _ = s.conn.WriteToUDP(p, from)
		}
	}
}

// fakeClock records corrections; the system clock is not touched.
type fakeClock struct {
	mu           sync.Mutex
	steps, slews []time.Duration
	fail         error
}

func (c *fakeClock) Step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, d)
	return c.fail
}

func (c *fakeClock) Slew(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slews = append(c.slews, d)
	return c.fail
}

func near(d, want time.Duration) bool {
	const tol = 100 * time.Millisecond // a loaded 2-core machine
	return d > want-tol && d < want+tol
}

func TestSyncStepsThenSlews(t *testing.T) {
	srv := startServer(t, 3*time.Second, nil)
	clk := &fakeClock{}
	var changes []bool
	s, err := New(Options{Servers: func() []string { return []string{srv.addr()} }, Clock: clk,
		OnChange: func(st Status) { changes = append(changes, st.Synced) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if len(clk.steps) != 1 || !near(clk.steps[0], 3*time.Second) || !st.Synced || st.Adjusting != "step" || st.Stratum != 2 {
		t.Fatalf("first round: steps %v, status %+v; want one step of about 3 s", clk.steps, st)
	}
	// The clock is "corrected" only in the fake: a small offset now slews.
	srv.offset = 200 * time.Millisecond
	if err := s.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if len(clk.slews) != 1 || !near(clk.slews[0], 200*time.Millisecond) || s.Status().Adjusting != "slew" {
		t.Fatalf("small offset: slews %v steps %v, want one slew of about 200 ms", clk.slews, clk.steps)
	}
	// Far off again (someone set the clock by hand): step.
	srv.offset = -90 * time.Second
	if err := s.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if len(clk.steps) != 2 || !near(clk.steps[1], -90*time.Second) {
		t.Fatalf("large offset: steps %v, want a second step of about -90 s", clk.steps)
	}
	st = s.Status()
	if st.Steps != 2 || st.Slews != 1 || st.Delay < 0 || st.Delay > time.Second || st.Server != srv.addr() {
		t.Fatalf("status %+v", st)
	}
	if len(changes) != 1 || !changes[0] {
		t.Fatalf("OnChange calls %v, want one (synced)", changes)
	}
}

func TestServersInOrderAndRefusals(t *testing.T) {
	silent := startServer(t, 0, func(req, reply []byte) [][]byte { return nil })
	kod := startServer(t, 0, func(req, reply []byte) [][]byte {
		reply[1] = 0
		copy(reply[12:], "RATE")
		return [][]byte{reply}
	})
	unsynced := startServer(t, 0, func(req, reply []byte) [][]byte {
		reply[0] = 3<<6 | 4<<3 | 4
		return [][]byte{reply}
	})
	// A stale reply (wrong origin) first, then the real one: the stale one
	// is ignored, the real one used.
	good := startServer(t, time.Second, func(req, reply []byte) [][]byte {
		stale := append([]byte(nil), reply...)
		binary.BigEndian.PutUint64(stale[24:], 12345)
		binary.BigEndian.PutUint64(stale[40:], toTimestamp(time.Now().Add(time.Hour)))
		return [][]byte{stale, reply}
	})
	clk := &fakeClock{}
	servers := []string{silent.addr(), kod.addr(), unsynced.addr(), good.addr()}
	s, err := New(Options{Servers: func() []string { return servers }, Clock: clk, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Server != good.addr() || len(clk.steps) != 1 || !near(clk.steps[0], time.Second) {
		t.Fatalf("status %+v steps %v: want the fourth server's time (1 s ahead)", st, clk.steps)
	}
	servers = servers[:3]
	err = s.Round(context.Background())
	for _, want := range []error{ErrKissOfDeath, ErrUnsynchronised} {
		if !errors.Is(err, want) {
			t.Errorf("round without a good server: %v, want it to include %v", err, want)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "no answer") || !strings.Contains(s.Status().LastError, "RATE") {
		t.Errorf("round error %v / status error %q: want the silent server's timeout and the kiss code", err, s.Status().LastError)
	}
	if !s.Status().Synced {
		t.Error("one failed round must not unsynchronise the clock before UnsyncedAfter")
	}
}

func TestUnsyncedAfterAndMonitorMode(t *testing.T) {
	srv := startServer(t, 0, nil)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var servers []string = []string{srv.addr()}
	var changes []bool
	s, err := New(Options{Servers: func() []string { return servers }, Now: clock, UnsyncedAfter: time.Minute,
		OnChange: func(st Status) { changes = append(changes, st.Synced) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); !st.Synced || st.Adjusting != "monitor" || st.Steps != 0 {
		t.Fatalf("monitor mode: %+v", st)
	}
	servers = nil
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if err := s.Round(context.Background()); err != nil {
		t.Fatal(err) // no server configured is not an error of the round
	}
	if st := s.Status(); st.Synced || st.LastError != "no NTP server configured" {
		t.Fatalf("after 2 min without an answer: %+v", st)
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("OnChange %v, want synced then unsynced", changes)
	}
}

func TestFailedCorrectionIsNotSynced(t *testing.T) {
	srv := startServer(t, 5*time.Second, nil)
	clk := &fakeClock{fail: errors.New("operation not permitted")}
	s, err := New(Options{Servers: func() []string { return []string{srv.addr()} }, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Round(context.Background())
	if st := s.Status(); st.Synced || !strings.Contains(st.LastError, "not permitted") {
		t.Fatalf("status %+v: a clock that cannot be set is not synchronised", st)
	}
}

func TestRunStopsWithContextAndTrigger(t *testing.T) {
	srv := startServer(t, 0, nil)
	s, err := New(Options{Servers: func() []string { return []string{srv.addr()} }, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().LastSync.IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	first := s.Status().LastAttempt
	time.Sleep(5 * time.Millisecond)
	s.Trigger()
	for s.Status().LastAttempt.Equal(first) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Status().LastAttempt.Equal(first) {
		t.Error("Trigger did not start a round before the hour-long interval")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestUnsynchronisedStates(t *testing.T) {
	silent := startServer(t, 0, func(req, reply []byte) [][]byte { return nil })
	good := startServer(t, 0, nil)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	servers := []string{silent.addr()}
	type change struct {
		synced  bool
		servers int
	}
	var changes []change
	s, err := New(Options{Servers: func() []string { return servers }, Now: clock, UnsyncedAfter: time.Minute,
		Timeout: 100 * time.Millisecond, OnChange: func(st Status) { changes = append(changes, change{st.Synced, len(st.Servers)}) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = s.Round(ctx)
	advance(30 * time.Second)
	_ = s.Round(ctx)
	if len(changes) != 0 {
		t.Fatalf("30 s without an answer: %v, want no report yet", changes)
	}
	advance(31 * time.Second)
	_ = s.Round(ctx)
	if len(changes) != 1 || changes[0] != (change{false, 1}) {
		t.Fatalf("never synced for over a minute: %v, want one unsynchronised report", changes)
	}
	servers = []string{silent.addr(), good.addr()}
	_ = s.Round(ctx)
	if len(changes) != 2 || changes[1] != (change{true, 2}) || !s.Status().Synced {
		t.Fatalf("after the second server answered: %v", changes)
	}
	servers = nil
	_ = s.Round(ctx)
	if len(changes) != 3 || changes[2].servers != 0 {
		t.Fatalf("NTP turned off: %v, want a report without servers", changes)
	}
}
