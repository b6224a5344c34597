package mirror

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// rigPair is a primary store "a" shipping to a standby store "b".
type rigPair struct {
	keys   pair
	a, b   *ringstore.Store
	bState *State
	recv   *receiverRig
	send   *senderRig
}

func startPair(t *testing.T, size, slot int64, rOpts ReceiverOptions, sOpts SenderOptions) *rigPair {
	t.Helper()
	p := &rigPair{keys: newPair(t)}
	p.a, _ = openStore(t, size, slot)
	// The standby's store is larger: it re-batches what it receives (more
	// padding when acks come often), and must not evict what the
	// primary still holds.
	p.b, _ = openStore(t, 2*size, slot)
	p.bState, _ = OpenState("")
	rOpts.Store, rOpts.NodeID, rOpts.TLS, rOpts.State = p.b, "b", p.keys.b.ServerConfig(), p.bState
	p.recv = startReceiver(t, rOpts)
	sOpts.Store, sOpts.NodeID, sOpts.Addr = p.a, "a", p.recv.Addr
	if sOpts.TLS == nil {
		sOpts.TLS = p.keys.a.ClientConfig()
	}
	if sOpts.Epoch == nil {
		sOpts.Epoch = epochFn(5)
	}
	p.send = startSender(t, sOpts)
	return p
}

func TestSteadyMirroring(t *testing.T) {
	checkLeaks(t)
	p := startPair(t, 64<<20, 4<<20, ReceiverOptions{}, SenderOptions{})
	cams := []*camera{newCamera(t, p.a, "cam1", 1, 3000), newCamera(t, p.a, "cam2", 2, 1500)}
	for i := range 3 {
		from := t0.Add(time.Duration(i) * 5 * time.Second)
		for _, c := range cams {
			c.record(t, from, from.Add(5*time.Second))
		}
		for _, c := range cams {
			mirrored(t, p.a, p.b, c.name)
		}
	}
	// Spans and gaps match too (the standby's own restart marks are not
	// copied; the primary's are).
	for _, c := range cams {
		sa, ga, _ := p.a.Spans(c.name, t0.Add(-time.Minute), t0.Add(time.Minute))
		sb, gb, _ := p.b.Spans(c.name, t0.Add(-time.Minute), t0.Add(time.Minute))
		if fmt.Sprint(sa, ga) != fmt.Sprint(sb, gb) {
			t.Errorf("%s: spans/gaps on the standby %v %v, primary %v %v", c.name, sb, gb, sa, ga)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		st := p.send.s.Status()
		if !st.Connected || st.LagBytes != 0 || st.LagSeconds != 0 || st.Version != MaxVersion {
			return fmt.Errorf("sender status %+v, want connected, version %d, no lag", st, MaxVersion)
		}
		rs := p.recv.r.Status()
		if !rs.Connected || rs.Peer != "a" || rs.LagSeconds != 0 || rs.Epoch != 5 {
			return fmt.Errorf("receiver status %+v, want connected to a at epoch 5 without lag", rs)
		}
		return nil
	})
	p.send.stop()
	p.recv.stop()
}

func TestLagWhileStandbyAway(t *testing.T) {
	p := startPair(t, 64<<20, 4<<20, ReceiverOptions{}, SenderOptions{})
	c := newCamera(t, p.a, "cam1", 1, 2000)
	c.record(t, t0, t0.Add(5*time.Second))
	mirrored(t, p.a, p.b, "cam1")
	p.recv.stop()
	c.record(t, t0.Add(5*time.Second), t0.Add(15*time.Second))
	if err := p.a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.send.s.Status()
	if st.LagBytes <= 0 || st.LagSeconds < 9 || st.LagSeconds > 11 {
		t.Errorf("lag with the standby away: %d bytes, %.1f s; want > 0 bytes and about 10 s", st.LagBytes, st.LagSeconds)
	}
	// Catch-up after the outage, from the acknowledged position.
	p.recv.serve(t, "127.0.0.1:0")
	mirrored(t, p.a, p.b, "cam1")
	waitFor(t, 5*time.Second, func() error {
		if st := p.send.s.Status(); st.LagBytes != 0 || st.LagSeconds != 0 || st.Reconnects == 0 {
			return fmt.Errorf("after catch-up: %+v", st)
		}
		return nil
	})
}

func TestRingWrappedDuringOutage(t *testing.T) {
	// 8 slots of 1 MiB: ~30 s of this camera fill the ring several times.
	p := startPair(t, 8<<20, 1<<20, ReceiverOptions{}, SenderOptions{})
	c := newCamera(t, p.a, "cam1", 1, 16000)
	c.record(t, t0, t0.Add(2*time.Second))
	mirrored(t, p.a, p.b, "cam1")
	p.recv.stop()
	for i := range 30 {
		from := t0.Add(2*time.Second + time.Duration(i)*time.Second)
		c.record(t, from, from.Add(time.Second))
		if err := p.a.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := p.a.Streams()
	if !st[0].First.After(t0.Add(2 * time.Second)) {
		t.Fatalf("the ring did not wrap: oldest footage %v", st[0].First)
	}
	p.recv.serve(t, "127.0.0.1:0")
	oldest := st[0].First
	want := frames(t, p.a, "cam1", false)
	waitFor(t, 10*time.Second, func() error {
		got := frames(t, p.b, "cam1", false)
		var tail []frameID
		for _, f := range got {
			if f.t >= want[0].t {
				tail = append(tail, f)
			}
		}
		return sameFrames(tail, want)
	})
	_, gaps, err := p.b.Spans("cam1", t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range gaps {
		if g.Cause == ringstore.GapEvicted && !g.End.Before(oldest.Add(-time.Second)) && g.Start.Before(t0.Add(3*time.Second)) {
			found = true
		}
	}
	if !found {
		t.Errorf("standby gaps %v: want one marked evicted from the outage to %v", gaps, oldest)
	}
	if err := contains(p.send.log.String(), "ring evicted"); err != nil {
		t.Error(err)
	}
}

func TestWrongCertificateRefused(t *testing.T) {
	other := newPair(t) // another pairing's CA
	p := startPair(t, 16<<20, 1<<20, ReceiverOptions{}, SenderOptions{TLS: other.a.ClientConfig()})
	c := newCamera(t, p.a, "cam1", 1, 500)
	c.record(t, t0, t0.Add(2*time.Second))
	waitFor(t, 5*time.Second, func() error {
		if p.recv.r.Status().Refused == 0 {
			return errors.New("no refusal yet")
		}
		return contains(p.recv.log.String(), "TLS handshake failed")
	})
	if got := frames(t, p.b, "cam1", false); len(got) != 0 {
		t.Errorf("the standby wrote %d frames from a sender without the pair's keys", len(got))
	}
	if p.send.s.Status().Connected {
		t.Error("the sender believes it is connected")
	}
}

// primaryRecords returns a's frames records of stream.
func primaryRecords(t *testing.T, a *ringstore.Store) []ringstore.Record {
	t.Helper()
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	all, err := a.ReadAfter(ringstore.Position{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []ringstore.Record
	for _, r := range all {
		if r.Kind == ringstore.KindFrames {
			out = append(out, r)
		}
	}
	if len(out) < 3 {
		t.Fatalf("%d records", len(out))
	}
	return out
}

func TestRefusals(t *testing.T) {
	keys := newPair(t)
	a, _ := openStore(t, 16<<20, 1<<20)
	c := newCamera(t, a, "cam1", 1, 500)
	c.record(t, t0, t0.Add(4*time.Second))
	recs := primaryRecords(t, a)
	br := func(r ringstore.Record) batchRecord { return batchRecord{Pos: r.Pos, Raw: r.Raw} }
	h := hello{MinVersion: 1, MaxVersion: 2, StoreFormat: ringstore.FormatVersion, Epoch: 7, NodeID: "a", VolumeID: a.Volume().ID}
	corrupt := br(recs[1])
	corrupt.Raw = append([]byte(nil), corrupt.Raw...)
	corrupt.Raw[len(corrupt.Raw)/2] ^= 0x40

	tests := []struct {
		name string
		// second is sent after batch {epoch 7, seq 1, recs[0]} was acked.
		second     batch
		hello      hello
		code       uint8
		log        string
		notStandby bool
	}{
		{name: "replayed batch", second: batch{Epoch: 7, Seq: 1, Records: []batchRecord{br(recs[1])}}, hello: h, code: CodeReplay, log: "replayed"},
		{name: "old epoch", second: batch{Epoch: 6, Seq: 2, Records: []batchRecord{br(recs[1])}}, hello: h, code: CodeStaleEpoch, log: "epoch 6, highest seen 7"},
		{name: "corrupt record", second: batch{Epoch: 7, Seq: 2, Records: []batchRecord{br(recs[2]), corrupt}}, hello: h, code: CodeCorrupt, log: "failed its check"},
		{name: "newer store format", hello: hello{MinVersion: 1, MaxVersion: 2, StoreFormat: ringstore.FormatVersion + 1, Epoch: 7, NodeID: "a"}, code: CodeStoreFormat, log: "newer than this firmware reads"},
		{name: "no common version", hello: hello{MinVersion: MaxVersion + 1, MaxVersion: MaxVersion + 1, StoreFormat: 1, Epoch: 7, NodeID: "a"}, code: CodeVersion, log: "speaks versions"},
		{name: "receiver is not the standby", hello: h, code: CodeNotStandby, log: "not the standby", notStandby: true},
		{name: "hello names another node", hello: hello{MinVersion: 1, MaxVersion: 2, StoreFormat: 1, Epoch: 7, NodeID: "b"}, code: CodeProtocol, log: "its certificate another"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := openStore(t, 16<<20, 1<<20)
			refused := make(chan uint8, 4)
			ro := ReceiverOptions{Store: b, NodeID: "b", TLS: keys.b.ServerConfig(), OnRefusal: func(code uint8, _ error) { refused <- code }}
			if tc.notStandby {
				ro.Standby = func() bool { return false }
			}
			rig := startReceiver(t, ro)
			addr, _ := rig.Addr()
			cl, err := dialRaw(t, addr, keys.a.ClientConfig(), tc.hello)
			if tc.second.Seq == 0 {
				if got := refusalCode(err); got != tc.code {
					t.Fatalf("hello: %v (code %d), want code %d", err, got, tc.code)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := cl.send(batch{Epoch: 7, Seq: 1, Records: []batchRecord{br(recs[0])}}); err != nil {
					t.Fatal(err)
				}
				if a, err := cl.next(); err != nil || a.Seq != 1 || a.Pos != recs[0].Pos {
					t.Fatalf("first batch: ack %+v, %v", a, err)
				}
				if err := cl.send(tc.second); err != nil {
					t.Fatal(err)
				}
				if _, err := cl.next(); refusalCode(err) != tc.code {
					t.Fatalf("second batch: %v, want refusal code %d", err, tc.code)
				}
			}
			waitFor(t, 2*time.Second, func() error { return contains(rig.log.String(), tc.log) })
			select {
			case code := <-refused:
				if code != tc.code {
					t.Errorf("OnRefusal code %d, want %d", code, tc.code)
				}
			case <-time.After(2 * time.Second):
				t.Error("OnRefusal not called")
			}
			if err := contains(rig.log.String(), "refused sender"); err != nil {
				t.Error(err)
			}
			// Nothing of the refused message was written: only the first
			// record's frames are there.
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := frames(t, b, "cam1", false)
			want := 0
			if tc.second.Seq != 0 {
				want = len(recs[0].Frames)
			}
			if len(got) != want {
				t.Errorf("standby holds %d frames, want %d (the first batch's)", len(got), want)
			}
		})
	}
}

func TestOldEpochConnectionRefused(t *testing.T) {
	// A deposed primary (epoch 5) comes back after the standby saw epoch 9.
	keys := newPair(t)
	b, _ := openStore(t, 16<<20, 1<<20)
	st, _ := OpenState("")
	rig := startReceiver(t, ReceiverOptions{Store: b, NodeID: "b", TLS: keys.b.ServerConfig(), State: st})
	addr, _ := rig.Addr()
	h := hello{MinVersion: 1, MaxVersion: 2, StoreFormat: 1, Epoch: 9, NodeID: "a"}
	if _, err := dialRaw(t, addr, keys.a.ClientConfig(), h); err != nil {
		t.Fatal(err)
	}
	h.Epoch = 5
	_, err := dialRaw(t, addr, keys.a.ClientConfig(), h)
	if refusalCode(err) != CodeStaleEpoch {
		t.Fatalf("hello at epoch 5 after 9: %v, want a stale-epoch refusal", err)
	}
	if st.Epoch() != 9 {
		t.Errorf("highest epoch %d, want 9", st.Epoch())
	}
	waitFor(t, 2*time.Second, func() error { return contains(rig.log.String(), "mirror hello from epoch 5, highest seen 9") })
}

// fence is a hand-written Fence recording what it was asked.
type fence struct {
	highest uint64
	asked   []string
}

func (f *fence) CheckEpoch(what string, e uint64) error {
	f.asked = append(f.asked, what)
	if e < f.highest {
		return fmt.Errorf("epoch %d below %d", e, f.highest)
	}
	f.highest = e
	return nil
}

func TestFenceConsulted(t *testing.T) {
	f := &fence{highest: 10}
	p := startPair(t, 16<<20, 1<<20, ReceiverOptions{Fence: f}, SenderOptions{Epoch: epochFn(4)})
	c := newCamera(t, p.a, "cam1", 1, 500)
	c.record(t, t0, t0.Add(2*time.Second))
	waitFor(t, 5*time.Second, func() error { return contains(p.recv.log.String(), "epoch 4 below 10") })
	if err := contains(p.send.log.String(), "standby at"); err != nil {
		t.Error(err)
	}
	p.recv.stop()
	if len(f.asked) == 0 || f.asked[0] != "mirror hello" {
		t.Errorf("fence asked %v", f.asked)
	}
	if got := frames(t, p.b, "cam1", false); len(got) != 0 {
		t.Errorf("%d frames written from a fenced sender", len(got))
	}
}

func TestVersionInterop(t *testing.T) {
	tests := []struct {
		name         string
		recv, sender uint8
		want         uint8
	}{
		{"v1 receiver, v2 sender", Version1, Version2, Version1},
		{"v2 receiver, v1 sender", Version2, Version1, Version1},
		{"v2 both", Version2, Version2, Version2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startPair(t, 16<<20, 1<<20, ReceiverOptions{MaxVersion: tc.recv}, SenderOptions{MaxVersion: tc.sender})
			c := newCamera(t, p.a, "cam1", 1, 1000)
			c.record(t, t0, t0.Add(3*time.Second))
			mirrored(t, p.a, p.b, "cam1")
			if v := p.send.s.Status().Version; v != tc.want {
				t.Errorf("version %d, want %d", v, tc.want)
			}
			// Only version 2 tells the standby the primary's newest frame.
			waitFor(t, 3*time.Second, func() error {
				pn := p.recv.r.Status().PrimaryNewest
				if (tc.want >= Version2) != !pn.IsZero() {
					return fmt.Errorf("primary newest on the standby %v at version %d", pn, tc.want)
				}
				return nil
			})
		})
	}
}

func TestBatchEncodingPerVersion(t *testing.T) {
	b := batch{Epoch: 3, Seq: 9, Records: []batchRecord{{Pos: ringstore.Position{Gen: 2, Offset: 4096}, Raw: []byte("x")}}, PrimaryNewest: t0}
	v1 := b.encode(Version1)
	if _, err := decodeBatch(v1, Version1); err != nil {
		t.Fatalf("v1: %v", err)
	}
	// A version 1 decoder never sees the version 2 field: the sender
	// encodes for the negotiated version; a v2 payload is not v1.
	if _, err := decodeBatch(b.encode(Version2), Version1); !errors.Is(err, ErrProtocol) {
		t.Errorf("v2 payload read as v1: %v, want a protocol error", err)
	}
	got, err := decodeBatch(b.encode(Version2), Version2)
	if err != nil || !got.PrimaryNewest.Equal(t0) {
		t.Errorf("v2: %+v, %v", got, err)
	}
}
