package mirror

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// failback is the pair after a failover: A recorded t0..t0+10s as primary
// (mirrored to B), kept recording alone until t0+14s (isolated, before it
// learned it was fenced), while B took over at t0+12s and recorded until
// t0+20s.
type failback struct {
	keys             pair
	a, b             *ringstore.Store
	aDir             string
	stA, stB         *State
	aOwn, bOwn, both []frameID
}

func setupFailback(t *testing.T) *failback {
	t.Helper()
	f := &failback{keys: newPair(t)}
	f.a, f.aDir = openStore(t, 64<<20, 4<<20)
	f.b, _ = openStore(t, 64<<20, 4<<20)
	var err error
	if f.stA, err = OpenState(filepath.Join(t.TempDir(), "mirror-a.json")); err != nil {
		t.Fatal(err)
	}
	if f.stB, err = OpenState(filepath.Join(t.TempDir(), "mirror-b.json")); err != nil {
		t.Fatal(err)
	}
	// A primary at epoch 5, B standby.
	recv := startReceiver(t, ReceiverOptions{Store: f.b, NodeID: "b", TLS: f.keys.b.ServerConfig(), State: f.stB})
	send := startSender(t, SenderOptions{Store: f.a, NodeID: "a", TLS: f.keys.a.ClientConfig(), Addr: recv.Addr, Epoch: epochFn(5), State: f.stA})
	camA := newCamera(t, f.a, "cam1", 1, 1500)
	camA.record(t, t0, t0.Add(10*time.Second))
	mirrored(t, f.a, f.b, "cam1")
	send.stop()
	recv.stop()
	// The link is cut: A records on alone; B takes over (epoch 9).
	camA.record(t, t0.Add(10*time.Second), t0.Add(14*time.Second))
	camB := newCamera(t, f.b, "cam1", 2, 1500)
	camB.record(t, t0.Add(12*time.Second), t0.Add(20*time.Second))
	for _, s := range []*ringstore.Store{f.a, f.b} {
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f.aOwn = frames(t, f.a, "cam1", false)
	for _, fr := range frames(t, f.b, "cam1", false) {
		if fr.t >= t0.Add(12*time.Second).UnixNano() {
			f.bOwn = append(f.bOwn, fr)
		}
	}
	f.both = append(append([]frameID(nil), f.aOwn...), f.bOwn...)
	sortFrames(f.both)
	return f
}

func sortFrames(fs []frameID) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].t != fs[j].t {
			return fs[i].t < fs[j].t
		}
		if fs[i].track != fs[j].track {
			return fs[i].track < fs[j].track
		}
		return fs[i].data < fs[j].data
	})
}

// holdsAll checks that got holds every frame of want exactly once and
// nothing else.
func holdsAll(got, want []frameID) error {
	seen := map[frameID]int{}
	for _, f := range got {
		seen[f]++
		if seen[f] > 1 {
			return fmt.Errorf("%v returned twice", f)
		}
	}
	for _, f := range want {
		if seen[f] == 0 {
			return fmt.Errorf("%v missing (%d frames, want %d)", f, len(got), len(want))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d frames, want %d", len(got), len(want))
	}
	return nil
}

func TestFailbackByContent(t *testing.T) {
	checkLeaks(t)
	f := setupFailback(t)
	// A returns as standby; B ships by content.
	recv := startReceiver(t, ReceiverOptions{Store: f.a, NodeID: "a", TLS: f.keys.a.ServerConfig(), State: f.stA})
	send := startSender(t, SenderOptions{Store: f.b, NodeID: "b", TLS: f.keys.b.ClientConfig(), Addr: recv.Addr, Epoch: epochFn(9), State: f.stB})
	waitFor(t, 10*time.Second, func() error {
		got := frames(t, f.a, "cam1", true)
		sortFrames(got)
		return holdsAll(got, f.both)
	})
	// B did not ship A's own footage back: A's backfill stream holds only
	// B's frames of the window both recorded.
	bf := frames(t, f.a, ringstore.BackfillName("cam1", "b"), false)
	var window []frameID
	for _, fr := range f.bOwn {
		if fr.t < t0.Add(14*time.Second).UnixNano() {
			window = append(window, fr)
		}
	}
	sortFrames(bf)
	if err := holdsAll(bf, window); err != nil {
		t.Errorf("backfill stream: %v", err)
	}
	spans, gaps, err := f.a.MergedSpans("cam1", t0, t0.Add(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 || !spans[0].Start.Equal(t0) || spans[0].End.Before(t0.Add(19900*time.Millisecond)) {
		t.Errorf("merged spans %v gaps %v, want one span over t0..t0+20s", spans, gaps)
	}
	if got := f.stA.Received("b")["cam1"]; got.Before(t0.Add(19 * time.Second)) {
		t.Errorf("A's watermark from B %v", got)
	}
	send.stop()
	recv.stop()

	// Switchover back: A primary again (epoch 11), B standby. B gets A's
	// own part of the window both recorded (t0+10s..t0+14s), which it
	// never had, and nothing it holds already.
	recv = startReceiver(t, ReceiverOptions{Store: f.b, NodeID: "b", TLS: f.keys.b.ServerConfig(), State: f.stB})
	send = startSender(t, SenderOptions{Store: f.a, NodeID: "a", TLS: f.keys.a.ClientConfig(), Addr: recv.Addr, Epoch: epochFn(11), State: f.stA})
	waitFor(t, 10*time.Second, func() error {
		got := frames(t, f.b, "cam1", true)
		sortFrames(got)
		return holdsAll(got, f.both)
	})
	var aWindow []frameID
	for _, fr := range f.aOwn {
		if fr.t >= t0.Add(10*time.Second).UnixNano() {
			aWindow = append(aWindow, fr)
		}
	}
	bf = frames(t, f.b, ringstore.BackfillName("cam1", "a"), false)
	sortFrames(bf)
	if err := holdsAll(bf, aWindow); err != nil {
		t.Errorf("B's backfill stream from A: %v", err)
	}
	send.stop()
	recv.stop()
}

func TestBackfillInterruptedAndResumed(t *testing.T) {
	f := setupFailback(t)
	// Small batches; the standby takes three, then refuses everything
	// (its fence says so), and is stopped, its store closed and reopened:
	// the sender restarts by content and re-sends what was written but
	// not acknowledged.
	cut := &cutFence{after: 3}
	recv := startReceiver(t, ReceiverOptions{Store: f.a, NodeID: "a", TLS: f.keys.a.ServerConfig(), State: f.stA, Fence: cut})
	send := startSender(t, SenderOptions{Store: f.b, NodeID: "b", TLS: f.keys.b.ClientConfig(), Addr: recv.Addr, Epoch: epochFn(9), State: f.stB, BatchBytes: 8 << 10, Window: 16 << 10})
	waitFor(t, 10*time.Second, func() error { return contains(recv.log.String(), "interrupted by the test") })
	send.stop()
	recv.stop()
	acked := f.stA.Received("b")["cam1"]
	if !acked.Before(t0.Add(19 * time.Second)) {
		t.Fatalf("the backfill finished (acked up to %v) before it was interrupted", acked)
	}
	if err := f.a.Close(); err != nil {
		t.Fatal(err)
	}
	a := reopen(t, f.aDir)
	stA, err := OpenState(f.stA.path)
	if err != nil {
		t.Fatal(err)
	}
	if got := stA.Received("b")["cam1"]; !got.Equal(acked) {
		t.Fatalf("watermark after reopen %v, want %v", got, acked)
	}
	recv = startReceiver(t, ReceiverOptions{Store: a, NodeID: "a", TLS: f.keys.a.ServerConfig(), State: stA})
	send = startSender(t, SenderOptions{Store: f.b, NodeID: "b", TLS: f.keys.b.ClientConfig(), Addr: recv.Addr, Epoch: epochFn(9), State: f.stB})
	waitFor(t, 10*time.Second, func() error {
		got := frames(t, a, "cam1", true)
		sortFrames(got)
		return holdsAll(got, f.both)
	})
	send.stop()
	recv.stop()
}

// cutFence accepts the first batches, then refuses everything.
type cutFence struct {
	mu      sync.Mutex
	after   int
	batches int
}

func (c *cutFence) CheckEpoch(what string, _ uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if what == "mirror batch" {
		c.batches++
	}
	if c.batches > c.after {
		return errors.New("interrupted by the test")
	}
	return nil
}
