package recorder_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

// checkLeaks fails the test when goroutines of package recorder or of
// gortsplib outlive it. Call it first, so its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := leakedGoroutines()
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines leaked; first:\n%s", len(leaked), leaked[0])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func leakedGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "nvr/recorder.") || strings.Contains(g, "bluenviron/gortsplib") {
			out = append(out, g)
		}
	}
	return out
}

func startSim(t *testing.T, opts camsim.Options, paths map[string]camsim.PathConfig) *camsim.Simulator {
	t.Helper()
	if opts.Address == "" {
		opts.Address = "127.0.0.1:0"
	}
	if opts.SenderReportPeriod == 0 {
		opts.SenderReportPeriod = 500 * time.Millisecond
	}
	sim, err := camsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range paths {
		if err := sim.AddPath(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := sim.Start(context.Background()); err != nil {
		sim.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func testOptions() recorder.Options {
	var log *slog.Logger
	if os.Getenv("RECORDER_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return recorder.Options{
		Logger:       log,
		ReadTimeout:  3 * time.Second,
		StallTimeout: 1500 * time.Millisecond,
		BackoffMin:   50 * time.Millisecond,
		BackoffMax:   400 * time.Millisecond,
		HealthyAfter: time.Second,
	}
}

// runSession runs a session until the test ends.
func runSession(t *testing.T, cam recorder.Camera, w recorder.FrameWriter, opts recorder.Options) *recorder.Session {
	t.Helper()
	s, err := recorder.NewSession(cam, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after cancel")
		}
		if st := s.Status(); st.State != recorder.StateStopped {
			t.Errorf("state after stop = %v", st.State)
		}
	})
	return s
}

func TestRecordCodecs(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name      string
		path      camsim.PathConfig
		transport recorder.Transport
		codecs    []ringstore.Codec
	}{
		{"H.264 with AAC over TCP", camsim.PathConfig{Video: camsim.H264, Audio: camsim.AAC}, "", []ringstore.Codec{ringstore.CodecH264, ringstore.CodecAAC}},
		{"H.265 with G.711 over TCP", camsim.PathConfig{Video: camsim.H265, Audio: camsim.PCMU}, recorder.TransportTCP, []ringstore.Codec{ringstore.CodecH265, ringstore.CodecPCMU}},
		{"H.265 with AAC over UDP", camsim.PathConfig{Video: camsim.H265, Audio: camsim.AAC}, recorder.TransportUDP, []ringstore.Codec{ringstore.CodecH265, ringstore.CodecAAC}},
		{"H.264 alone over UDP", camsim.PathConfig{Video: camsim.H264}, recorder.TransportUDP, []ringstore.Codec{ringstore.CodecH264}},
		{"H.264 at 2 Mbit/s", camsim.PathConfig{Video: camsim.H264, Bitrate: 2e6}, "", []ringstore.Codec{ringstore.CodecH264}},
	}
	paths := map[string]camsim.PathConfig{}
	for i, tc := range tests {
		paths[pathName(i)] = tc.path
	}
	sim := startSim(t, camsim.Options{}, paths)
	t.Run("group", func(t *testing.T) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				w := newFakeWriter()
				cam := recorder.Camera{Name: "cam", URL: sim.URL(pathName(i)), Transport: tc.transport}
				start := time.Now()
				s := runSession(t, cam, w, testOptions())
				waitFor(t, 15*time.Second, "50 video frames", func() bool { return videoFrames(w) >= 50 })
				tracks, frames, gaps, _ := w.snapshot()
				w.checkProblems(t)
				if len(gaps) != 0 {
					t.Errorf("gaps %v in a healthy recording", gaps)
				}
				if len(tracks) != len(tc.codecs) {
					t.Fatalf("tracks %v, want codecs %v", tracks, tc.codecs)
				}
				for i, c := range tc.codecs {
					if tracks[i].Codec != c || int(tracks[i].ID) != i {
						t.Errorf("track %d = %v, want %v", i, tracks[i].Codec, c)
					}
					if len(tracks[i].Config) == 0 && c != ringstore.CodecPCMU {
						t.Errorf("track %d (%v) has no config", i, c)
					}
				}
				if !frames[0].Key || frames[0].Track != 0 {
					t.Errorf("recording starts with track %d key=%v, want a video keyframe", frames[0].Track, frames[0].Key)
				}
				var audio int
				for _, f := range frames {
					if f.Track == 1 {
						audio++
					}
					if f.Time.Before(start.Add(-3*time.Second)) || f.Time.After(time.Now().Add(3*time.Second)) {
						t.Fatalf("frame time %v is not near the wall clock (started %v)", f.Time, start)
					}
				}
				if len(tc.codecs) > 1 && audio == 0 {
					t.Error("no audio frames recorded")
				}
				st := s.Status()
				if st.State != recorder.StateRecording || st.Connects != 1 || st.FramesRecorded == 0 {
					t.Errorf("status %+v", st)
				}
				if st.Tracks[0].Width == 0 || st.Tracks[0].Height == 0 {
					t.Errorf("no resolution in status: %+v", st.Tracks[0])
				}
				waitFor(t, 10*time.Second, "bitrate measured", func() bool { return s.Status().Bitrate > 0 })
				st = s.Status()
				if st.FPS < 20 || st.FPS > 30 {
					t.Errorf("measured %.1f fps, camera sends 25", st.FPS)
				}
				if want := float64(tc.path.Bitrate); want > 0 && (st.Bitrate < 0.8*want || st.Bitrate > 1.2*want) {
					t.Errorf("measured %.0f bit/s, camera sends %.0f", st.Bitrate, want)
				}
			})
		}
	})
}

func pathName(i int) string { return "cam" + string(rune('a'+i)) }

func videoFrames(w *fakeWriter) int {
	_, frames, _, _ := w.snapshot()
	n := 0
	for _, f := range frames {
		if f.Track == 0 {
			n++
		}
	}
	return n
}

// TestFaults records a camera through each fault the simulator can inject
// and checks that recording resumes with the gap's cause recorded.
func TestFaults(t *testing.T) {
	checkLeaks(t)
	none := ringstore.GapCause(255)
	tests := []struct {
		name    string
		path    camsim.PathConfig
		faults  []camsim.Fault
		wantGap ringstore.GapCause // none: no gap expected
		check   func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats)
	}{
		{
			name: "disconnect mid-GOP", path: camsim.PathConfig{Audio: camsim.AAC},
			faults: []camsim.Fault{{Kind: camsim.FaultDrop}}, wantGap: ringstore.GapCameraOffline,
			check: func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats) {
				if st.Reconnects == 0 || st.Connects < 2 {
					t.Errorf("reconnects %d connects %d", st.Reconnects, st.Connects)
				}
			},
		},
		{
			name: "stall with TCP open", path: camsim.PathConfig{},
			faults: []camsim.Fault{{Kind: camsim.FaultStall, Duration: 4 * time.Second}}, wantGap: ringstore.GapStall,
		},
		{
			name: "RTP timestamps jump an hour forward", path: camsim.PathConfig{Audio: camsim.PCMU},
			faults: []camsim.Fault{{Kind: camsim.FaultJump, Offset: time.Hour}}, wantGap: ringstore.GapTimestampJump,
			check: checkTimesNearNow,
		},
		{
			name: "RTP timestamps jump 30 s back", path: camsim.PathConfig{Video: camsim.H265},
			faults: []camsim.Fault{{Kind: camsim.FaultJump, Offset: -30 * time.Second}}, wantGap: ringstore.GapTimestampJump,
			check: checkTimesNearNow,
		},
		{
			name: "camera clock reset (NTP jump)", path: camsim.PathConfig{Audio: camsim.AAC},
			faults: []camsim.Fault{{Kind: camsim.FaultJumpNTP, Offset: -2 * time.Hour}}, wantGap: none,
			check: checkTimesNearNow,
		},
		{
			name: "parameter sets change mid-stream", path: camsim.PathConfig{},
			faults: []camsim.Fault{{Kind: camsim.FaultParams}}, wantGap: none,
			check: func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats) {
				_, _, _, calls := w.snapshot()
				if calls < 2 || ps.ParamChanges == 0 {
					t.Errorf("SetTracks called %d times, %d parameter changes sent", calls, ps.ParamChanges)
				}
			},
		},
		{
			name: "parameter sets change mid-stream (H.265)", path: camsim.PathConfig{Video: camsim.H265},
			faults: []camsim.Fault{{Kind: camsim.FaultParams}}, wantGap: none,
			check: func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats) {
				_, _, _, calls := w.snapshot()
				if calls < 2 {
					t.Errorf("SetTracks called %d times", calls)
				}
			},
		},
		{
			name: "malformed RTP", path: camsim.PathConfig{Audio: camsim.AAC},
			faults: []camsim.Fault{{Kind: camsim.FaultMalformed, Count: 40}}, wantGap: none,
			check: func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats) {
				if ps.Malformed == 0 || st.DecodeErrors == 0 {
					t.Errorf("malformed sent %d, decode errors counted %d", ps.Malformed, st.DecodeErrors)
				}
			},
		},
		{
			name: "401 then success", path: camsim.PathConfig{User: "admin", Pass: "s3cret"},
			faults: []camsim.Fault{{Kind: camsim.FaultRefuseAuth}, {Kind: camsim.FaultDrop}}, wantGap: ringstore.GapCameraOffline,
			check: func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats) {
				if ps.AuthRefused == 0 {
					t.Error("the simulator refused no DESCRIBE")
				}
				if strings.Contains(st.URL, "s3cret") {
					t.Errorf("password in status URL %q", st.URL)
				}
			},
		},
		{
			name: "camera never answers", path: camsim.PathConfig{},
			faults: []camsim.Fault{{Kind: camsim.FaultDrop}, {Kind: camsim.FaultNeverAnswer, Duration: 7 * time.Second}}, wantGap: ringstore.GapCameraOffline,
			check: func(t *testing.T, w *fakeWriter, st recorder.Status, ps camsim.PathStats) {
				if st.Reconnects < 2 {
					t.Errorf("reconnects %d, want the hung attempts to time out and retry", st.Reconnects)
				}
			},
		},
	}
	paths := map[string]camsim.PathConfig{}
	for i, tc := range tests {
		paths[pathName(i)] = tc.path
	}
	sim := startSim(t, camsim.Options{}, paths)
	t.Run("group", func(t *testing.T) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				name := pathName(i)
				url := sim.URL(name)
				if tc.path.User != "" {
					url = strings.Replace(url, "rtsp://", "rtsp://"+tc.path.User+":"+tc.path.Pass+"@", 1)
				}
				w := newFakeWriter()
				s := runSession(t, recorder.Camera{Name: name, URL: url}, w, testOptions())
				waitFor(t, 15*time.Second, "recording", func() bool { return w.count() >= 30 })
				for _, f := range tc.faults {
					if err := sim.Fault(name, f); err != nil {
						t.Fatal(err)
					}
				}
				before := w.count()
				if tc.wantGap != none {
					waitFor(t, 20*time.Second, "gap "+tc.wantGap.String(), func() bool { return w.gapCount(tc.wantGap) > 0 })
					waitFor(t, 20*time.Second, "recording to resume", func() bool { return w.framesAfterLastGap() >= 50 })
				} else {
					waitFor(t, 20*time.Second, "recording to go on", func() bool { return w.count() >= before+100 })
				}
				_, _, gaps, _ := w.snapshot()
				for _, g := range gaps {
					if g.cause != tc.wantGap {
						t.Errorf("gap with cause %v, want only %v", g.cause, tc.wantGap)
					}
				}
				st := s.Status()
				if st.State != recorder.StateRecording {
					t.Errorf("state %v (%s), want recording", st.State, st.LastError)
				}
				if tc.wantGap != none && st.Gaps[tc.wantGap] == 0 {
					t.Errorf("status counts no %v gap: %v", tc.wantGap, st.Gaps)
				}
				w.checkProblems(t)
				if tc.check != nil {
					ps, err := sim.Stats(name)
					if err != nil {
						t.Fatal(err)
					}
					tc.check(t, w, st, ps)
				}
			})
		}
	})
}

// checkTimesNearNow checks that the last frames are timed by the wall clock,
// not by a camera clock that jumped.
func checkTimesNearNow(t *testing.T, w *fakeWriter, _ recorder.Status, _ camsim.PathStats) {
	t.Helper()
	_, frames, _, _ := w.snapshot()
	now := time.Now()
	for _, f := range frames[len(frames)-20:] {
		if d := now.Sub(f.Time); d < -3*time.Second || d > 5*time.Second {
			t.Fatalf("frame at %v is %v from now", f.Time, d)
		}
	}
}

func TestCameraRestart(t *testing.T) {
	checkLeaks(t)
	paths := map[string]camsim.PathConfig{"cam": {Audio: camsim.AAC}}
	sim := startSim(t, camsim.Options{}, paths)
	addr := sim.Addr()
	w := newFakeWriter()
	s := runSession(t, recorder.Camera{Name: "cam", URL: sim.URL("cam")}, w, testOptions())
	waitFor(t, 15*time.Second, "recording", func() bool { return w.count() >= 30 })
	sim.Close()
	waitFor(t, 10*time.Second, "offline gap", func() bool { return w.gapCount(ringstore.GapCameraOffline) > 0 })
	waitFor(t, 10*time.Second, "backoff", func() bool { return s.Status().State == recorder.StateBackoff })
	time.Sleep(500 * time.Millisecond)
	startSim(t, camsim.Options{Address: addr}, paths)
	waitFor(t, 15*time.Second, "recording to resume", func() bool { return w.framesAfterLastGap() >= 50 })
	w.checkProblems(t)
	if st := s.Status(); st.State != recorder.StateRecording || st.Connects != 2 {
		t.Errorf("state %v connects %d", st.State, st.Connects)
	}
}

func TestStoreFailures(t *testing.T) {
	checkLeaks(t)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"cam": {Audio: camsim.AAC}})
	t.Run("backpressure drops whole GOPs", func(t *testing.T) {
		w := newFakeWriter()
		var full bool
		w.fail = func(f ringstore.Frame) error {
			if full {
				return ringstore.ErrBackpressure
			}
			return nil
		}
		s := runSession(t, recorder.Camera{Name: "cam", URL: sim.URL("cam")}, w, testOptions())
		waitFor(t, 15*time.Second, "recording", func() bool { return w.count() >= 30 })
		w.mu.Lock()
		full = true
		w.mu.Unlock()
		waitFor(t, 5*time.Second, "frames dropped", func() bool { return s.Status().FramesDropped >= 20 })
		w.mu.Lock()
		full = false
		w.mu.Unlock()
		waitFor(t, 5*time.Second, "recording to resume", func() bool { return w.gapCount(ringstore.GapDropped) == 1 && w.framesAfterLastGap() >= 30 })
		w.checkProblems(t)
		_, frames, gaps, _ := w.snapshot()
		if f := frames[gaps[0].after]; !f.Key || f.Track != 0 {
			t.Errorf("first frame after the drop: track %d key %v, want a video keyframe", f.Track, f.Key)
		}
	})
	t.Run("a panic in a session is recovered", func(t *testing.T) {
		w := newFakeWriter()
		s := runSession(t, recorder.Camera{Name: "cam", URL: sim.URL("cam")}, w, testOptions())
		waitFor(t, 15*time.Second, "recording", func() bool { return w.count() >= 10 })
		w.mu.Lock()
		w.panicOnce = true
		w.mu.Unlock()
		waitFor(t, 10*time.Second, "recording to resume", func() bool {
			return s.Status().Panics == 1 && w.gapCount(ringstore.GapCameraOffline) == 1 && w.framesAfterLastGap() >= 30
		})
		w.checkProblems(t)
	})
	t.Run("a closed store stops the session", func(t *testing.T) {
		w := newFakeWriter()
		w.fail = func(ringstore.Frame) error { return ringstore.ErrClosed }
		s, err := recorder.NewSession(recorder.Camera{Name: "cam", URL: sim.URL("cam")}, w, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.Run(ctx); !errors.Is(err, recorder.ErrStore) || !errors.Is(err, ringstore.ErrClosed) {
			t.Fatalf("Run = %v, want ErrStore wrapping ErrClosed", err)
		}
		if st := s.Status(); st.State != recorder.StateError || !strings.Contains(st.LastError, "closed") {
			t.Errorf("status %v %q", st.State, st.LastError)
		}
	})
}
