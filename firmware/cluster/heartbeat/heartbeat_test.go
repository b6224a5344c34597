package heartbeat

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestMarshalRoundTrip(t *testing.T) {
	m := Message{Version: 1, Path: 1, Epoch: 7, Seq: 42, SentNanos: 5, EchoSeq: 3, EchoSent: 2, EchoHold: 1, NodeID: "a", Firmware: "1.2.3"}
	m.Restart[0], m.ConfigHash[31] = 9, 8
	b, err := m.Marshal(nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if *got != m {
		t.Fatalf("round trip: got %+v want %+v", *got, m)
	}
	if _, err := Unmarshal(b, []byte("another key of sixteen+")); err != ErrBadMAC {
		t.Fatalf("wrong key: %v, want ErrBadMAC", err)
	}
	b[20] ^= 1
	if _, err := Unmarshal(b, testKey); err != ErrBadMAC {
		t.Fatalf("tampered: %v, want ErrBadMAC", err)
	}
	if _, err := (&Message{NodeID: strings.Repeat("x", 65)}).Marshal(nil, testKey); err == nil {
		t.Fatal("over-long node ID marshalled")
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRefusals feeds crafted datagrams to receive and checks each is refused
// with a clear log line and changes nothing.
func TestRefusals(t *testing.T) {
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	mk := func(f func(*Message)) Message {
		m := Message{Version: 1, Epoch: 5, Seq: 10, SentNanos: 1, NodeID: "b", Firmware: "dev"}
		m.Restart[0] = 1
		if f != nil {
			f(&m)
		}
		return m
	}
	tests := []struct {
		name   string
		prior  []Message // accepted first
		msg    Message
		key    []byte
		reason string
	}{
		{"wrong key", nil, mk(nil), []byte("not the pair key!"), "bad MAC"},
		{"replay", []Message{mk(nil)}, mk(nil), nil, "replayed sequence 10"},
		{"old sequence", []Message{mk(func(m *Message) { m.Seq = 1000 })}, mk(nil), nil, "old sequence 10"},
		{"old epoch", []Message{mk(nil)}, mk(func(m *Message) { m.Seq, m.Epoch = 11, 4 }), nil, "old epoch 4"},
		{"stale restart", []Message{mk(nil), mk(func(m *Message) { m.Restart[0], m.Seq = 2, 1 })}, mk(func(m *Message) { m.Seq = 11 }), nil, "stale restart identity"},
		{"cross path", nil, mk(func(m *Message) { m.Path = 1 }), nil, "cross-path replay"},
		{"self", nil, mk(func(m *Message) { m.NodeID = "a" }), nil, "names this node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lb logBuf
			s, err := New(Options{NodeID: "a", Key: testKey, Paths: []Path{{Name: "dedicated", Local: "127.0.0.1:0", Peer: "127.0.0.1:1"}},
				Logger: slog.New(slog.NewTextHandler(&lb, nil))})
			if err != nil {
				t.Fatal(err)
			}
			p := s.paths[0]
			for _, m := range tc.prior {
				b, _ := m.Marshal(nil, testKey)
				s.receive(p, b, from, time.Now())
			}
			if p.refused != 0 {
				t.Fatalf("prior messages refused: %s", lb.String())
			}
			before := s.Status()
			key := tc.key
			if key == nil {
				key = testKey
			}
			b, _ := tc.msg.Marshal(nil, key)
			s.receive(p, b, from, time.Now())
			if p.refused != 1 {
				t.Fatalf("not refused; log: %s", lb.String())
			}
			if !strings.Contains(lb.String(), "heartbeat refused") || !strings.Contains(lb.String(), tc.reason) {
				t.Fatalf("log line lacks %q: %s", tc.reason, lb.String())
			}
			after := s.Status()
			if before.PeerEpoch != after.PeerEpoch || before.Paths[0].Received != after.Paths[0].Received {
				t.Fatalf("refused datagram changed state: %+v -> %+v", before, after)
			}
		})
	}
}

// TestNewerVersionInteroperates: a heartbeat of protocol version 2 with an
// appended field is read by this version (N-1), and flagged as a mismatch.
func TestNewerVersionInteroperates(t *testing.T) {
	m := Message{Version: 2, Seq: 1, NodeID: "b", Firmware: "2.0"}
	b, _ := m.Marshal(nil, testKey)
	b = b[:len(b)-macLen]
	b = append(b, 0xaa, 0xbb) // a field of version 2
	mac := hmacSum(b)
	b = append(b, mac...)
	got, err := Unmarshal(b, testKey)
	if err != nil || got.Firmware != "2.0" || got.Version != 2 {
		t.Fatalf("v2 heartbeat: %+v, %v", got, err)
	}
	s, _ := New(Options{NodeID: "a", Key: testKey, Paths: []Path{{Name: "d", Local: "127.0.0.1:0", Peer: "127.0.0.1:1"}}})
	s.receive(s.paths[0], b, &net.UDPAddr{}, time.Now())
	if st := s.Status(); !st.VersionMismatch || st.PeerProtocolVersion != 2 {
		t.Fatalf("no version mismatch reported: %+v", st)
	}
	// The same trailing bytes on a version-1 datagram are malformed.
	m.Version = 1
	b1, _ := m.Marshal(nil, testKey)
	b1 = append(b1[:len(b1)-macLen], 0xaa)
	b1 = append(b1, hmacSum(b1)...)
	if _, err := Unmarshal(b1, testKey); err != ErrMalformed {
		t.Fatalf("v1 with trailing bytes: %v", err)
	}
}

func hmacSum(b []byte) []byte {
	h := hmac.New(sha256.New, testKey)
	h.Write(b)
	return h.Sum(nil)
}

func TestReorderWithinWindowAccepted(t *testing.T) {
	s, _ := New(Options{NodeID: "a", Key: testKey, Paths: []Path{{Name: "d", Local: "127.0.0.1:0", Peer: "127.0.0.1:1"}}})
	p := s.paths[0]
	from := &net.UDPAddr{}
	for _, seq := range []uint64{1, 3, 2, 5, 4} {
		b, _ := (&Message{Version: 1, Seq: seq, NodeID: "b"}).Marshal(nil, testKey)
		s.receive(p, b, from, time.Now())
	}
	if p.refused != 0 || p.recv != 5 {
		t.Fatalf("reordered datagrams: received %d refused %d", p.recv, p.refused)
	}
}

// TestTwoServices runs two services over two loopback paths and checks both
// see each other up, measure RTT and report mismatches.
func TestTwoServices(t *testing.T) {
	ports := freeUDPPorts(t, 4)
	hash := func(b byte) func() [32]byte { return func() [32]byte { return [32]byte{b} } }
	a, err := New(Options{NodeID: "a", Key: testKey, FirmwareVersion: "1.0", ConfigHash: hash(1), Interval: 20 * time.Millisecond,
		Paths: []Path{{"dedicated", ports[0], ports[1]}, {"lan", ports[2], ports[3]}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Options{NodeID: "b", Key: testKey, FirmwareVersion: "1.1", ConfigHash: hash(2), Interval: 20 * time.Millisecond,
		Paths: []Path{{"dedicated", ports[1], ports[0]}, {"lan", ports[3], ports[2]}}})
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*Service{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	var st Status
	for time.Now().Before(deadline) {
		st = a.Status()
		if len(st.Paths) == 2 && st.Paths[0].Up && st.Paths[1].Up && st.Paths[0].RTT > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if g := settledGoroutines(base); g > base {
		t.Errorf("goroutines leaked: %d before Run, %d after", base, g)
	}
	if !st.Paths[0].Up || !st.Paths[1].Up || st.Preferred != "dedicated" {
		t.Fatalf("paths not up: %+v", st)
	}
	if st.Paths[0].RTT <= 0 || st.Paths[0].RTT > time.Second {
		t.Fatalf("RTT %v", st.Paths[0].RTT)
	}
	if st.PeerID != "b" || !st.VersionMismatch || !st.ConfigMismatch {
		t.Fatalf("peer/mismatch not reported: %+v", st)
	}
	t.Logf("loopback heartbeat RTT %v, loss %.2f", st.Paths[0].RTT, st.Paths[0].Loss)
}

func freeUDPPorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var conns []*net.UDPConn
	for i := 0; i < n; i++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		out = append(out, c.LocalAddr().String())
	}
	for _, c := range conns {
		c.Close()
	}
	return out
}

func FuzzUnmarshal(f *testing.F) {
	m := Message{Version: 1, Seq: 1, NodeID: "a", Firmware: "1.0"}
	good, _ := m.Marshal(nil, testKey)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("NVHB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b, testKey)
		if err != nil {
			return
		}
		out, err := m.Marshal(nil, testKey)
		if err != nil {
			t.Fatalf("accepted message does not marshal: %v", err)
		}
		if m.Version <= ProtocolVersion && !bytes.Equal(out[8:], b[8:]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// TestUnboundPathDoesNotStopOthers: a path whose address does not exist
// (its link not up yet) is retried while the other path runs.
func TestUnboundPathDoesNotStopOthers(t *testing.T) {
	ports := freeUDPPorts(t, 2)
	var lb logBuf
	a, _ := New(Options{NodeID: "a", Key: testKey, Interval: 20 * time.Millisecond, BindRetry: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&lb, nil)),
		Paths:  []Path{{"dedicated", "192.0.2.1:7200", "192.0.2.2:7200"}, {"lan", ports[0], ports[1]}}})
	// Both nodes list their paths in the same order (the path index is on
	// the wire).
	b, _ := New(Options{NodeID: "b", Key: testKey, Interval: 20 * time.Millisecond, BindRetry: 50 * time.Millisecond,
		Paths: []Path{{"dedicated", "192.0.2.2:7200", "192.0.2.1:7200"}, {"lan", ports[1], ports[0]}}})
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*Service{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	var st Status
	for time.Now().Before(deadline) {
		if st = a.Status(); st.Paths[1].Up && strings.Count(lb.String(), "cannot bind path yet") >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if !st.Paths[1].Up || st.Paths[0].Up || st.Preferred != "lan" {
		t.Fatalf("status %+v", st)
	}
	if n := strings.Count(lb.String(), "cannot bind path yet"); n < 2 {
		t.Fatalf("bind not retried (%d attempts logged)", n)
	}
	if g := settledGoroutines(base); g > base {
		t.Errorf("goroutines leaked: %d before, %d after", base, g)
	}
}

// settledGoroutines waits up to a second for the count to fall to base
// (context.AfterFunc callbacks finish just after Run returns).
func settledGoroutines(base int) int {
	deadline := time.Now().Add(time.Second)
	g := runtime.NumGoroutine()
	for g > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		g = runtime.NumGoroutine()
	}
	return g
}
