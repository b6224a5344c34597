package camsim

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// needTool returns the path of an external tool; without it the test fails
// in CI and is skipped elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// TestFFmpegDecodes has ffmpeg, an independent client and decoder, play and
// fully decode streams for 2 s: H.265 with AAC, H.264 with G.711 and filler
// at 4 Mbit/s, and an H.264 stream that switches parameter sets mid-way.
// Any decode error ffmpeg reports fails the test, except missing references
// before the first keyframe (a reader joins the live stream mid-GOP).
func TestFFmpegDecodes(t *testing.T) {
	t.Parallel()
	ffmpeg := needTool(t, "ffmpeg")
	s := startSim(t, Options{}, map[string]PathConfig{
		"h265-aac":  {Video: H265, Audio: AAC},
		"h264-pcmu": {Video: H264, Audio: PCMU, Bitrate: 4_000_000},
		"params":    {Video: H264},
	})
	var wg sync.WaitGroup
	for _, path := range []string{"h265-aac", "h264-pcmu", "params"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-v", "error",
				"-rtsp_transport", "tcp", "-i", s.URL(path), "-t", "2", "-map", "0", "-f", "null", "-")
			out, err := cmd.CombinedOutput()
			var bad []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if line != "" && !joinMidGOP(line) {
					bad = append(bad, line)
				}
			}
			if err != nil || len(bad) > 0 {
				t.Errorf("ffmpeg on %s: %v\n%s", path, err, strings.Join(bad, "\n"))
			}
		}()
	}
	// Switch parameter sets once ffmpeg is playing.
	waitStats(t, s, "params", 10*time.Second, func(st PathStats) bool { return st.Frames >= 20 })
	mustFault(t, s, "params", Fault{Kind: FaultParams})
	wg.Wait()
	for _, path := range []string{"h265-aac", "h264-pcmu", "params"} {
		if st, _ := s.Stats(path); st.Frames < 40 {
			t.Errorf("%s: ffmpeg was sent only %d frames", path, st.Frames)
		}
	}
}

// joinMidGOP reports whether an ffmpeg error line is about P-frames whose
// references came before the reader joined (the simulator, like a camera,
// sends the live stream from wherever it is).
func joinMidGOP(line string) bool {
	for _, m := range []string{
		"Could not find ref with POC",              // hevc
		"reference picture missing during reorder", // h264
		"Missing reference picture",
		"decode_slice_header error",
		"no frame!",
		"Last message repeated",
	} {
		if strings.Contains(line, m) {
			return true
		}
	}
	return false
}
