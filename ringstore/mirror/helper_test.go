package mirror

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/ringstore"
)

// pair is the certificates of a test pairing of nodes "a" and "b".
type pair struct{ a, b *pairing.Bundle }

func newPair(t testing.TB) pair {
	t.Helper()
	bs, err := pairing.Pair([]string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	return pair{bs[0], bs[1]}
}

// openStore formats and opens a store in a temp dir; closed at cleanup.
func openStore(t testing.TB, size, slot int64) (*ringstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: size, SlotSize: slot}); err != nil {
		t.Fatal(err)
	}
	return reopen(t, dir), dir
}

func reopen(t testing.TB, dir string) *ringstore.Store {
	t.Helper()
	s, err := ringstore.Open(context.Background(), dir, ringstore.Options{CommitInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logBuf collects log lines for assertions.
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

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// receiverRig runs a Receiver on 127.0.0.1 until stopped.
type receiverRig struct {
	r      *Receiver
	addr   atomic.Value // string
	cancel context.CancelFunc
	done   chan error
	log    *logBuf
}

func startReceiver(t testing.TB, opts ReceiverOptions) *receiverRig {
	t.Helper()
	rig := &receiverRig{log: &logBuf{}}
	if opts.Logger == nil {
		opts.Logger = rig.log.logger()
	}
	r, err := NewReceiver(opts)
	if err != nil {
		t.Fatal(err)
	}
	rig.r = r
	rig.serve(t, "127.0.0.1:0")
	t.Cleanup(rig.stop)
	return rig
}

func (rig *receiverRig) serve(t testing.TB, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	rig.addr.Store(ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	rig.cancel = cancel
	rig.done = make(chan error, 1)
	go func() { rig.done <- rig.r.Serve(ctx, ln) }()
}

func (rig *receiverRig) stop() {
	if rig.cancel != nil {
		rig.cancel()
		<-rig.done
		rig.cancel = nil
	}
}

func (rig *receiverRig) Addr() (string, bool) {
	a, _ := rig.addr.Load().(string)
	return a, a != ""
}

// senderRig runs a Sender until stopped.
type senderRig struct {
	s      *Sender
	cancel context.CancelFunc
	done   chan error
	log    *logBuf
}

func startSender(t testing.TB, opts SenderOptions) *senderRig {
	t.Helper()
	rig := &senderRig{log: &logBuf{}}
	if opts.Logger == nil {
		opts.Logger = rig.log.logger()
	}
	if opts.Retry == 0 {
		opts.Retry = 50 * time.Millisecond
	}
	if opts.Poll == 0 {
		opts.Poll = 20 * time.Millisecond
	}
	s, err := NewSender(opts)
	if err != nil {
		t.Fatal(err)
	}
	rig.s = s
	ctx, cancel := context.WithCancel(context.Background())
	rig.cancel = cancel
	rig.done = make(chan error, 1)
	go func() { rig.done <- s.Run(ctx) }()
	t.Cleanup(rig.stop)
	return rig
}

func (rig *senderRig) stop() {
	if rig.cancel != nil {
		rig.cancel()
		<-rig.done
		rig.cancel = nil
	}
}

func epochFn(e uint64) func() uint64 { return func() uint64 { return e } }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// camera appends a synthetic stream: H.264 video at 25 fps with a keyframe
// every second, and AAC audio at 50 frames/s, payloads seeded per node so
// two nodes' recordings differ.
type camera struct {
	name string
	w    *ringstore.StreamWriter
	rng  *rand.Rand
	size int
}

func newCamera(t testing.TB, s *ringstore.Store, name string, seed uint64, size int) *camera {
	t.Helper()
	w, err := s.Stream(name)
	if err != nil {
		t.Fatal(err)
	}
	err = w.SetTracks([]ringstore.Track{
		{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{{0x67, 0x42}, {0x68, 0xce}}},
		{ID: 1, Codec: ringstore.CodecAAC, ClockRate: 48000, Channels: 1, Config: [][]byte{{0x11, 0x88}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &camera{name: name, w: w, rng: rand.New(rand.NewPCG(seed, 7)), size: size}
}

// record appends [from, to) of footage.
func (c *camera) record(t testing.TB, from, to time.Time) {
	t.Helper()
	for at := from.Truncate(20 * time.Millisecond); at.Before(to); at = at.Add(20 * time.Millisecond) {
		if at.Before(from) {
			continue
		}
		if at.UnixMilli()%40 == 0 {
			d := make([]byte, c.size)
			for i := range d {
				d[i] = byte(c.rng.Uint32())
			}
			c.append(t, ringstore.Frame{Track: 0, Time: at, Key: at.UnixMilli()%1000 == 0, Data: d})
		}
		a := make([]byte, 64)
		for i := range a {
			a[i] = byte(c.rng.Uint32())
		}
		c.append(t, ringstore.Frame{Track: 1, Time: at, Key: true, Data: a})
	}
}

func (c *camera) append(t testing.TB, f ringstore.Frame) {
	t.Helper()
	for range 1000 {
		_, err := c.w.Append(f)
		if !errors.Is(err, ringstore.ErrBackpressure) {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("store backlog stayed full")
}

// frameID identifies a frame's content.
type frameID struct {
	track uint8
	t     int64
	key   bool
	dts   time.Duration
	data  string
}

func (f frameID) String() string {
	return fmt.Sprintf("track %d at %v", f.track, time.Unix(0, f.t).UTC())
}

// frames reads every frame of stream (merged with its backfill streams
// when merged is set).
func frames(t testing.TB, s *ringstore.Store, stream string, merged bool) []frameID {
	t.Helper()
	from, to := t0.Add(-time.Hour), t0.Add(10*time.Hour)
	var next func() (ringstore.ReadFrame, error)
	if merged {
		r, err := s.MergedFrames(stream, from, to)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		next = r.Next
	} else {
		r, err := s.Frames(stream, from, to)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		next = r.Next
	}
	var out []frameID
	for {
		f, err := next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frameID{f.Track, f.Time.UnixNano(), f.Key, f.DTSOffset, string(f.Data)})
	}
}

// sameFrames reports the first difference between two frame lists.
func sameFrames(got, want []frameID) error {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Errorf("frame %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d frames, want %d", len(got), len(want))
	}
	return nil
}

// waitFor polls cond until it returns nil or d passes.
func waitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mirrored waits until b holds exactly a's frames of stream.
func mirrored(t testing.TB, a, b *ringstore.Store, stream string) {
	t.Helper()
	ctx := context.Background()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := frames(t, a, stream, false)
	if len(want) == 0 {
		t.Fatal("the primary holds no frames")
	}
	waitFor(t, 10*time.Second, func() error { return sameFrames(frames(t, b, stream, false), want) })
}

// checkLeaks fails when goroutines started during the test outlive it.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf)
		}
	})
}

// rawClient speaks the protocol by hand, to send what a Sender never would.
type rawClient struct {
	tc      *tls.Conn
	version uint8
	reply   helloReply
}

func dialRaw(t testing.TB, addr string, cfg *tls.Config, h hello) (*rawClient, error) {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := nc.(*tls.Conn)
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(tc, h.MaxVersion, msgHello, h.encode()); err != nil {
		return nil, err
	}
	f, err := readFrame(tc)
	if err != nil {
		return nil, err
	}
	if f.Type == msgError {
		m, _ := decodeError(f.Payload)
		return nil, &refusal{code: m.Code, err: errors.New(m.Text)}
	}
	rep, err := decodeHelloReply(f.Payload)
	if err != nil {
		return nil, err
	}
	return &rawClient{tc: tc, version: rep.Version, reply: rep}, nil
}

func (c *rawClient) send(b batch) error {
	return writeFrame(c.tc, c.version, msgBatch, b.encode(c.version))
}

// next returns the next ack or the refusal.
func (c *rawClient) next() (ack, error) {
	f, err := readFrame(c.tc)
	if err != nil {
		return ack{}, err
	}
	if f.Type == msgError {
		m, _ := decodeError(f.Payload)
		return ack{}, &refusal{code: m.Code, err: errors.New(m.Text)}
	}
	return decodeAck(f.Payload)
}

func refusalCode(err error) uint8 {
	var rf *refusal
	if errors.As(err, &rf) {
		return rf.code
	}
	return 0
}

func contains(s, sub string) error {
	if !strings.Contains(s, sub) {
		return fmt.Errorf("log lacks %q:\n%s", sub, s)
	}
	return nil
}
