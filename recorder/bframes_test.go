package recorder

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/nvrfw/nvr/ringstore"
)

// bframeClip has x264 encode two seconds with B-frames and returns its
// access units in decoding order with ffprobe's PTS and DTS (90 kHz).
func bframeClip(t *testing.T) (aus [][][]byte, pts, dts []int64) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg not installed")
		}
		t.Skip("ffmpeg not installed: no B-frame clip to test with")
	}
	dir := t.TempDir()
	ts, raw := filepath.Join(dir, "b.ts"), filepath.Join(dir, "b.h264")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
			"-c:v", "libx264", "-bf", "2", "-g", "25", "-x264-params", "aud=1:scenecut=0", "-f", "mpegts", ts},
		{"ffmpeg", "-nostdin", "-v", "error", "-i", ts, "-c", "copy", "-f", "h264", raw},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "packet=pts,dts", "-of", "csv=p=0", ts).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Split(strings.TrimSuffix(strings.TrimSpace(sc.Text()), ","), ",")
		if len(f) < 2 {
			continue
		}
		p, err1 := strconv.ParseInt(f[0], 10, 64)
		d, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ffprobe line %q", sc.Text())
		}
		pts, dts = append(pts, p), append(dts, d)
	}
	buf, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(buf); err != nil {
		t.Fatal(err)
	}
	for _, n := range nalus {
		if h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
			aus = append(aus, nil)
			continue
		}
		if len(aus) > 0 {
			aus[len(aus)-1] = append(aus[len(aus)-1], n)
		}
	}
	if len(aus) != len(pts) || len(aus) < 40 {
		t.Fatalf("%d access units, %d packets", len(aus), len(pts))
	}
	return aus, pts, dts
}

// TestBFrames records a real x264 stream with B-frames: decoding times come
// out monotonic and never after presentation, and presentation times are
// those of the camera.
func TestBFrames(t *testing.T) {
	aus, pts, _ := bframeClip(t)
	v := newVideoTrack(ringstore.CodecH264, paramSets{})
	clk := newTrackClock(90000, testClockCfg)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var lastDTS time.Time
	reordered := 0
	for i, nalus := range aus {
		au, ok, err := v.prepare(nalus)
		if err != nil || !ok {
			t.Fatalf("AU %d: ok=%v err=%v", i, ok, err)
		}
		dts := v.dts(au, pts[i])
		if v.dtsFailure > 0 {
			t.Fatalf("AU %d: DTS extractor failed", i)
		}
		p := clk.place(pts[i], dts, t0.Add(time.Duration(dts-pts[0])*time.Second/90000))
		if p.jumped {
			t.Fatalf("AU %d: jump", i)
		}
		d := p.pts.Add(-p.dtsOffset)
		if d.Before(lastDTS) {
			t.Fatalf("AU %d: decoding time went back", i)
		}
		lastDTS = d
		if want := t0.Add(time.Duration(pts[i]-pts[0]) * time.Second / 90000); p.pts.Sub(want).Abs() > time.Millisecond {
			t.Fatalf("AU %d: presentation %v, want %v", i, p.pts, want)
		}
		if i > 0 && pts[i] < pts[i-1] {
			reordered++
		}
	}
	if reordered == 0 {
		t.Fatal("clip has no B-frames")
	}
}
