package recorder_test

import (
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// Frames are placed at their capture time on the camera's clock, from the
// first one on: the simulator's sender reports (standard NTP timestamps)
// anchor every track, so no frame is timed by its arrival and nothing is
// slewed. Before, gortsplib's misread NTP fraction put frames up to 3.3 s
// off, and a first frame timed by arrival was slewed back at 10 ms/s, which
// moved frames across the benchmark's window edges. TCP only: over UDP the
// first report may be read after the first frame (another socket and
// goroutine), which is then timed by arrival, by design.
func TestFramesPlacedAtCaptureTime(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name      string
		path      camsim.PathConfig
		transport recorder.Transport
	}{
		{"H.264 over TCP", camsim.PathConfig{Video: camsim.H264, Bitrate: 4e6}, recorder.TransportTCP},
		{"H.265 with AAC over TCP", camsim.PathConfig{Video: camsim.H265, Audio: camsim.AAC}, recorder.TransportTCP},
	}
	paths := map[string]camsim.PathConfig{}
	for i, tc := range tests {
		paths[pathName(i)] = tc.path
	}
	sim := startSim(t, camsim.Options{}, paths)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWriter()
			start := time.Now()
			runSession(t, recorder.Camera{Name: "cam", URL: sim.URL(pathName(i)), Transport: tc.transport}, w, testOptions())
			waitFor(t, 15*time.Second, "40 video frames", func() bool { return videoFrames(w) >= 40 })
			_, frames, _, _ := w.snapshot()
			w.checkProblems(t)
			sent, err := sim.SentFrames(pathName(i), start.Add(-time.Second), time.Now().Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			captured := map[int64]bool{}
			for _, f := range sent {
				captured[f.Time.UnixMilli()] = true
			}
			var checked int
			for k, f := range frames {
				if f.Track != 0 {
					continue
				}
				checked++
				// Capture times are whole milliseconds apart from the
				// path's start (40 ms steps); allow one either side.
				ms := f.Time.UnixMilli()
				if !captured[ms] && !captured[ms-1] && !captured[ms+1] {
					t.Fatalf("video frame %d at %v: no frame was captured within 1 ms of it", k, f.Time.UTC())
				}
			}
			if checked < 40 {
				t.Fatalf("%d video frames checked, want >= 40", checked)
			}
		})
	}
}
