package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// scriptConn is a camConn that delivers scripted units, then ends.
type scriptConn struct {
	ts     []trackInfo
	doneCh chan struct{}
	stop   chan struct{}
	e      error
	wg     sync.WaitGroup
	once   sync.Once
}

func (c *scriptConn) tracks() []trackInfo   { return c.ts }
func (c *scriptConn) done() <-chan struct{} { return c.doneCh }
func (c *scriptConn) err() error            { return c.e }
func (c *scriptConn) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

// scriptConnector plays one script per connection; after the last it
// refuses connections.
type scriptConnector struct {
	mu      sync.Mutex
	tracks  []trackInfo
	scripts [][]unit
	ends    []error
}

func (f *scriptConnector) connect(ctx context.Context, cfg connectConfig) (camConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.scripts) == 0 {
		return nil, errors.New("connection refused")
	}
	script, end := f.scripts[0], f.ends[0]
	f.scripts, f.ends = f.scripts[1:], f.ends[1:]
	c := &scriptConn{ts: f.tracks, doneCh: make(chan struct{}), stop: make(chan struct{}), e: end}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for _, u := range script {
			select {
			case <-c.stop:
				return
			default:
			}
			cfg.deliver(u)
		}
		close(c.doneCh)
	}()
	return c, nil
}

// logWriter is a FrameWriter that logs every call as a short word:
// "tracks:<first byte of each video config>", "K<track>" for a keyframe,
// "F<track>" for another frame, "gap:<cause>", and "full" for a frame it
// refused with ErrBackpressure.
type logWriter struct {
	mu     sync.Mutex
	log    []string
	refuse map[int]bool // append calls (0-based) answered with ErrBackpressure
	calls  int
}

func (w *logWriter) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, s)
}

func (w *logWriter) SetTracks(tracks []ringstore.Track) error {
	var b strings.Builder
	b.WriteString("tracks")
	for _, t := range tracks {
		if t.Codec.IsVideo() && len(t.Config) > 1 {
			fmt.Fprintf(&b, ":%x", t.Config[0][len(t.Config[0])-1])
		}
	}
	w.add(b.String())
	return nil
}

func (w *logWriter) Append(f ringstore.Frame) (uint64, error) {
	w.mu.Lock()
	n := w.calls
	w.calls++
	refuse := w.refuse[n]
	w.mu.Unlock()
	if refuse {
		w.add("full")
		return 0, ringstore.ErrBackpressure
	}
	k := "F"
	if f.Key {
		k = "K"
	}
	w.add(fmt.Sprintf("%s%d", k, f.Track))
	return uint64(n), nil
}

func (w *logWriter) MarkGap(cause ringstore.GapCause, _ time.Time) {
	w.add("gap:" + strings.ReplaceAll(cause.String(), " ", "-"))
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log, " ")
}

// Units for scripts: video frame i (40 ms apart) and audio frame i.
var (
	spsB = append(bytes.Clone(testSPS352), 0xbb) // a different SPS, ending in bb
	t0   = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

func vunit(i int, offset time.Duration, nalus ...[]byte) unit {
	ts := uint32(i*3600) + uint32(offset/time.Second*90000)
	return unit{track: 0, ts: ts, recv: t0.Add(time.Duration(i) * 40 * time.Millisecond), nalus: nalus}
}

func aunit(i int) unit {
	return unit{track: 1, ts: uint32(i * 320), recv: t0.Add(time.Duration(i) * 40 * time.Millisecond), data: []byte{0xaa, byte(i)}}
}

func TestPipelineScripts(t *testing.T) {
	spsA := testSPS1080 // ends in 0x20
	tracks := []trackInfo{
		{codec: ringstore.CodecH264, clockRate: 90000, params: paramSets{sps: spsA, pps: testPPS}},
		{codec: ringstore.CodecPCMU, clockRate: 8000, channels: 1},
	}
	eof := errors.New("EOF")
	tests := []struct {
		name    string
		scripts [][]unit
		refuse  map[int]bool
		want    string
	}{
		{
			name:    "audio and P-frames before the first keyframe are dropped",
			scripts: [][]unit{{aunit(0), vunit(0, 0, testP), aunit(1), vunit(1, 0, testIDR), aunit(2), vunit(2, 0, testP)}},
			want:    "tracks:20 K0 K1 F0 gap:camera-offline",
		},
		{
			name: "new parameter sets reach the track table before their keyframe",
			scripts: [][]unit{{vunit(0, 0, testIDR), vunit(1, 0, testP), vunit(2, 0, spsB, testPPS), vunit(3, 0, testP),
				vunit(4, 0, testIDR), vunit(5, 0, testP)}},
			want: "tracks:20 K0 F0 F0 tracks:bb K0 F0 gap:camera-offline",
		},
		{
			name: "a timestamp jump marks a gap and waits for a keyframe",
			scripts: [][]unit{{vunit(0, 0, testIDR), vunit(1, 0, testP), aunit(1), vunit(2, time.Hour, testP), aunit(2),
				vunit(3, time.Hour, testP), vunit(4, time.Hour, testIDR), aunit(3), vunit(5, time.Hour, testP)}},
			want: "tracks:20 K0 F0 K1 gap:timestamp-jump K0 K1 F0 gap:camera-offline",
		},
		{
			name:    "backpressure drops whole GOPs",
			scripts: [][]unit{{vunit(0, 0, testIDR), vunit(1, 0, testP), vunit(2, 0, testP), aunit(2), vunit(3, 0, testIDR), vunit(4, 0, testP)}},
			refuse:  map[int]bool{1: true},
			want:    "tracks:20 K0 full gap:frames-dropped K0 F0 gap:camera-offline",
		},
		{
			name: "a reconnection starts again at a keyframe",
			scripts: [][]unit{
				{vunit(0, 0, testIDR), vunit(1, 0, testP)},
				{vunit(0, 0, testP), aunit(0), vunit(1, 0, testIDR), vunit(2, 0, testP)},
			},
			want: "tracks:20 K0 F0 gap:camera-offline tracks:20 K0 F0 gap:camera-offline",
		},
		{
			name:    "nothing recorded, no gap marked",
			scripts: [][]unit{{vunit(0, 0, testP), aunit(0)}, {}},
			want:    "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ends := make([]error, len(tc.scripts))
			for i := range ends {
				ends[i] = eof
			}
			fc := &scriptConnector{tracks: tracks, scripts: tc.scripts, ends: ends}
			w := &logWriter{refuse: tc.refuse}
			s, err := NewSession(Camera{Name: "cam", URL: "rtsp://cam/x"}, w, Options{
				BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, StallTimeout: time.Minute, connector: fc,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for s.Status().Reconnects < uint64(len(tc.scripts))+1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := w.String(); got != tc.want {
				t.Fatalf("writer saw\n  %s\nwant\n  %s", got, tc.want)
			}
		})
	}
}
