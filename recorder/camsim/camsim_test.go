package camsim

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// checkGoroutines fails the test if it leaves more goroutines running than
// it found, once its cleanups (registered after this call) have run.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// startSim starts a simulator on a free 127.0.0.1 port with the given paths
// and closes it when the test ends. (Leak checks are in TestLifecycleNoLeaks,
// which runs alone; the other tests run in parallel.)
func startSim(t *testing.T, opts Options, paths map[string]PathConfig) *Simulator {
	t.Helper()
	if opts.Address == "" {
		opts.Address = "127.0.0.1:0"
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for name, cfg := range paths {
		if err := s.AddPath(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// recvFrame is one access unit a test client decoded.
type recvFrame struct {
	rtpTime uint32
	at      time.Time
	au      [][]byte
	key     bool
}

// recvTrack is what a test client received on one media.
type recvTrack struct {
	media        *description.Media
	format       format.Format
	frames       []recvFrame
	packets      int
	payloadBytes int
	decodeErrors int
	srs          []*rtcp.SenderReport
	framesAtSR   int // frames received when the first sender report came
	lastSeq      uint16
	seqGaps      int
	ssrc         uint32 // of the last packet
}

// testReader is a gortsplib client reading every media of a path.
type testReader struct {
	c        *gortsplib.Client
	desc     *description.Session
	mu       sync.Mutex
	tracks   []*recvTrack
	authSeen []string // Authorization headers the client sent
}

type readOpts struct {
	transport gortsplib.Transport
	user      string
	pass      string
	timeout   time.Duration // client read/write timeout; default 3 s
}

// dialReader connects, describes and sets up every media; it does not play.
func dialReader(t *testing.T, s *Simulator, path string, o readOpts) (*testReader, error) {
	t.Helper()
	raw := s.URL(path)
	if o.user != "" {
		raw = strings.Replace(raw, "rtsp://", "rtsp://"+o.user+":"+o.pass+"@", 1)
	}
	u, err := base.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr := o.transport
	if o.timeout == 0 {
		o.timeout = 3 * time.Second
	}
	r := &testReader{c: &gortsplib.Client{
		Scheme: u.Scheme, Host: u.Host, Transport: &tr,
		ReadTimeout: o.timeout, WriteTimeout: o.timeout,
	}}
	r.c.OnRequest = func(req *base.Request) {
		if a := req.Header["Authorization"]; len(a) > 0 {
			r.mu.Lock()
			r.authSeen = append(r.authSeen, a[0])
			r.mu.Unlock()
		}
	}
	if err := r.c.Start2(); err != nil {
		return nil, err
	}
	desc, _, err := r.c.Describe(u)
	if err != nil {
		r.c.Close()
		return nil, err
	}
	r.desc = desc
	if err := r.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		r.c.Close()
		return nil, err
	}
	for _, m := range desc.Medias {
		rt := &recvTrack{media: m, format: m.Formats[0]}
		r.tracks = append(r.tracks, rt)
		r.install(t, rt)
	}
	return r, nil
}

// readPath dials and plays a path; the client is closed when the test ends.
func readPath(t *testing.T, s *Simulator, path string, o readOpts) *testReader {
	t.Helper()
	r, err := dialReader(t, s, path, o)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	t.Cleanup(r.c.Close)
	if _, err := r.c.Play(nil); err != nil {
		t.Fatalf("play %s: %v", path, err)
	}
	return r
}

func (r *testReader) install(t *testing.T, rt *recvTrack) {
	decode := func(*rtp.Packet) ([][]byte, bool, error) { return nil, false, nil }
	switch f := rt.format.(type) {
	case *format.H264:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		decode = func(p *rtp.Packet) ([][]byte, bool, error) {
			au, err := d.Decode(p)
			if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				return nil, false, nil
			}
			return au, err == nil, err
		}
	case *format.H265:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		decode = func(p *rtp.Packet) ([][]byte, bool, error) {
			au, err := d.Decode(p)
			if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				return nil, false, nil
			}
			return au, err == nil, err
		}
	case *format.MPEG4Audio:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		decode = func(p *rtp.Packet) ([][]byte, bool, error) {
			aus, err := d.Decode(p)
			return aus, err == nil, err
		}
	case *format.G711:
		decode = func(p *rtp.Packet) ([][]byte, bool, error) {
			return [][]byte{p.Payload}, true, nil
		}
	}
	r.c.OnPacketRTP(rt.media, rt.format, func(p *rtp.Packet) {
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		if rt.packets > 0 && p.SequenceNumber != rt.lastSeq+1 {
			rt.seqGaps++
		}
		rt.lastSeq = p.SequenceNumber
		rt.ssrc = p.SSRC
		rt.packets++
		rt.payloadBytes += len(p.Payload)
		au, ok, err := decode(p)
		if err != nil {
			rt.decodeErrors++
			return
		}
		if !ok {
			return
		}
		key := false
		switch rt.format.(type) {
		case *format.H264:
			key = isH264Key(au)
		case *format.H265:
			key = isH265Key(au)
		default:
			key = true
		}
		rt.frames = append(rt.frames, recvFrame{rtpTime: p.Timestamp, at: now, au: au, key: key})
	})
	r.c.OnPacketRTCP(rt.media, func(p rtcp.Packet) {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			r.mu.Lock()
			if len(rt.srs) == 0 {
				rt.framesAtSR = len(rt.frames)
			}
			rt.srs = append(rt.srs, sr)
			r.mu.Unlock()
		}
	})
}

func isH264Key(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1f == 5 {
			return true
		}
	}
	return false
}

func isH265Key(au [][]byte) bool {
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		if t := (n[0] >> 1) & 0x3f; t >= 16 && t <= 21 {
			return true
		}
	}
	return false
}

// snapshot returns a copy of track i's state.
func (r *testReader) track(i int) recvTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *r.tracks[i]
	c.frames = append([]recvFrame(nil), c.frames...)
	c.srs = append([]*rtcp.SenderReport(nil), c.srs...)
	return c
}

// waitFrames waits until track i has at least n frames or the timeout ends.
func (r *testReader) waitFrames(t *testing.T, i, n int, timeout time.Duration) recvTrack {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tr := r.track(i)
		if len(tr.frames) >= n {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("track %d: %d frames after %v, want %d", i, len(tr.frames), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
