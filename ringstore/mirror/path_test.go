package mirror

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

func TestPathChange(t *testing.T) {
	// The receiver listens on two paths (dedicated link and LAN); the
	// cluster's choice moves from one to the other and back.
	checkLeaks(t)
	keys := newPair(t)
	a, _ := openStore(t, 32<<20, 1<<20)
	b, _ := openStore(t, 32<<20, 1<<20)
	rig := startReceiver(t, ReceiverOptions{Store: b, NodeID: "b", TLS: keys.b.ServerConfig()})
	lan, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rig.r.Serve(ctx, lan) }()
	defer func() { cancel(); <-done }()
	dedicated, _ := rig.Addr()
	var path atomic.Value
	path.Store(dedicated)
	send := startSender(t, SenderOptions{Store: a, NodeID: "a", TLS: keys.a.ClientConfig(), Epoch: epochFn(3),
		Addr: func() (string, bool) { return path.Load().(string), true }})
	c := newCamera(t, a, "cam1", 1, 1000)
	for i, addr := range []string{dedicated, lan.Addr().String(), dedicated} {
		path.Store(addr)
		from := t0.Add(time.Duration(i) * 3 * time.Second)
		c.record(t, from, from.Add(3*time.Second))
		mirrored(t, a, b, "cam1")
		waitFor(t, 5*time.Second, func() error {
			if got := send.s.Status().Addr; got != addr {
				return fmt.Errorf("shipping to %s, want %s", got, addr)
			}
			return nil
		})
	}
	if err := contains(send.log.String(), "path to the standby changed"); err != nil {
		t.Error(err)
	}
	if st := send.s.Status(); st.Reconnects < 2 {
		t.Errorf("reconnects %d, want 2", st.Reconnects)
	}
	send.stop()
	rig.stop()
}

func TestSlowStandbyNeverBlocksRecording(t *testing.T) {
	// A standby that completes the hello and then reads nothing: the
	// sender stops at its window; the primary records on at full speed.
	keys := newPair(t)
	a, _ := openStore(t, 64<<20, 4<<20)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", keys.b.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	stalled := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := readFrame(c); err != nil {
			c.Close()
			return
		}
		rep := helloReply{Version: MaxVersion, StoreFormat: ringstore.FormatVersion, Epoch: 1, NodeID: "b", VolumeID: "stalled"}
		writeFrame(c, MaxVersion, msgHelloReply, rep.encode())
		stalled <- c // and never read again
	}()
	const window = 2 << 20
	send := startSender(t, SenderOptions{Store: a, NodeID: "a", TLS: keys.a.ClientConfig(), Epoch: epochFn(1), Window: window, BatchBytes: 256 << 10,
		Addr: func() (string, bool) { return ln.Addr().String(), true }})
	c := newCamera(t, a, "cam1", 1, 20000)
	start := time.Now()
	c.record(t, t0, t0.Add(20*time.Second)) // about 10 MB
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	waitFor(t, 5*time.Second, func() error {
		if st := send.s.Status(); st.Bytes == 0 {
			return fmt.Errorf("nothing shipped yet: %+v", st)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	st := send.s.Status()
	if st.Bytes > window+256<<10 {
		t.Errorf("shipped %d bytes unacknowledged, window %d", st.Bytes, window)
	}
	if st.LagBytes < 5<<20 || st.LagSeconds < 15 {
		t.Errorf("lag %d bytes, %.1f s; want the whole recording behind", st.LagBytes, st.LagSeconds)
	}
	if took > 5*time.Second {
		t.Errorf("recording 20 s of footage took %v with a stalled standby", took)
	}
	t.Logf("20 s of footage (%d MB) recorded and flushed in %v with the standby stalled", a.BytesAfter(ringstore.Position{})>>20, took)
	send.stop()
	ln.Close()
	select {
	case c := <-stalled:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Error("the stalled standby never got the hello")
	}
}

func TestPeerAddr(t *testing.T) {
	tests := []struct {
		peer string
		ok   bool
		want string
	}{
		{"10.0.0.2:7400", true, "10.0.0.2:7445"},
		{"[fd77::2]:7400", true, "[fd77::2]:7445"},
		{"fd77::2", true, "[fd77::2]:7445"},
		{"", false, ""},
	}
	for _, tc := range tests {
		got, ok := PeerAddr(func() (string, bool) { return tc.peer, tc.ok }, DefaultPort)()
		if got != tc.want || ok != tc.ok {
			t.Errorf("PeerAddr(%q, %v) = %q, %v; want %q", tc.peer, tc.ok, got, ok, tc.want)
		}
	}
}
