package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder/clip"
	"github.com/nvrfw/nvr/ringstore"
)

// A real x264 320x240 Baseline SPS and PPS: the exporter parses the SPS.
var (
	testSPS = []byte("gB\xc0\r\xda\x05\a\xec\x04@\x00\x00\x03\x00@\x00\x00\f\x83\xc5\n\xa8")
	testPPS = []byte("h\xce\x0f\xc8")
)

// exportStore formats a store in a temporary directory holding cam1 from
// base for 4 s (25 fps, keyframe every second, synthetic slices), nothing
// for 4 s, then 4 s more. With change, the SPS changes at 2 s.
func exportStore(t *testing.T, base time.Time, change bool) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 32 << 20, SlotSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := ringstore.Open(ctx, dir, ringstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := st.Stream("cam1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{testSPS, testPPS}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		at := base.Add(time.Duration(i) * 40 * time.Millisecond)
		if i >= 100 {
			at = at.Add(4 * time.Second) // the second half after a 4 s hole
		}
		if change && i == 50 {
			sps := append([]byte(nil), testSPS...)
			sps[3] = 0x1e // level 3.0 instead of 1.3: still a valid SPS
			if err := w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{sps, testPPS}}}); err != nil {
				t.Fatal(err)
			}
		}
		if i == 100 {
			w.MarkGap(ringstore.GapCameraOffline, base.Add(4*time.Second))
		}
		key := i%25 == 0
		nalu := append([]byte{0x41, 0x9a, byte(i)}, make([]byte, 1000)...)
		if key {
			nalu[0] = 0x65
		}
		data := binary.BigEndian.AppendUint32(nil, uint32(len(nalu)))
		data = append(data, nalu...)
		if _, err := w.Append(ringstore.Frame{Track: 0, Time: at, Key: key, Data: data}); err != nil {
			t.Fatalf("append frame %d: %v", i, err)
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExportCommand(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	dir := exportStore(t, base, false)
	out := filepath.Join(t.TempDir(), "clip.mp4")
	at := func(s float64) string {
		return base.Add(time.Duration(s * float64(time.Second))).Format(time.RFC3339Nano)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   []string // substrings expected on stderr
		wantFile bool
	}{
		{"whole range across the gap", []string{"--data", dir, "--camera", "cam1", "--from", at(0.5), "--to", at(14), "-o", out},
			0, []string{"wrote " + out, "track 0: H264, 200 frames", "gap ", "camera offline", "footage ends at 2026-11-25T12:00:12Z, before --to"}, true},
		{"from before the footage", []string{"--data", dir, "--camera", "cam1", "--from", at(-10), "--to", at(2), "-o", out},
			0, []string{"track 0: H264, 50 frames", "footage starts at 2026-11-25T12:00:00Z, after --from"}, true},
		{"no footage", []string{"--data", dir, "--camera", "cam1", "--from", at(20), "--to", at(30), "-o", out},
			1, []string{"no footage of cam1", "nearest recorded", "ends 8s before --from"}, false},
		{"no footage before", []string{"--data", dir, "--camera", "cam1", "--from", at(-30), "--to", at(-20), "-o", out},
			1, []string{"starts 20s after --to"}, false},
		{"unknown camera", []string{"--data", dir, "--camera", "cam9", "--from", at(0), "--to", at(1), "-o", out},
			1, []string{`no recording of camera "cam9"`, "recorded: cam1"}, false},
		{"no store", []string{"--data", filepath.Join(dir, "nope"), "--camera", "cam1", "--from", at(0), "--to", at(1), "-o", out},
			1, []string{"open store"}, false},
		{"missing camera", []string{"--data", dir, "--from", "-10m", "-o", out}, 2, []string{"needs --camera"}, false},
		{"bad time", []string{"--data", dir, "--camera", "cam1", "--from", "yesterday", "-o", out}, 2, []string{"--from", "RFC 3339"}, false},
		{"reversed", []string{"--data", dir, "--camera", "cam1", "--from", at(5), "--to", at(1), "-o", out}, 2, []string{"must be before"}, false},
		{"extra argument", []string{"--data", dir, "--camera", "cam1", "--from", at(0), "-o", out, "x"}, 2, []string{"no arguments"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"export"}, tc.args...), Env{Stdout: &stdout, Stderr: &stderr})
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			b, err := os.ReadFile(out)
			if tc.wantFile != (err == nil) {
				t.Fatalf("output file: %v, want it written: %v", err, tc.wantFile)
			}
			if tc.wantFile && (len(b) < 16 || string(b[4:8]) != "ftyp") {
				t.Fatalf("output is not an MP4: % x", b[:min(16, len(b))])
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.partial"))
			if len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

func TestExportToStdout(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	dir := exportStore(t, base, false)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"export", "--data", dir, "--camera", "cam1",
		"--from", base.Add(time.Second).Format(time.RFC3339), "--to", base.Add(2 * time.Second).Format(time.RFC3339), "-o", "-"},
		Env{Stdout: &stdout, Stderr: &stderr})
	if code != 0 || stdout.Len() < 16 || string(stdout.Bytes()[4:8]) != "ftyp" {
		t.Fatalf("exit %d, %d bytes on stdout; stderr:\n%s", code, stdout.Len(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "25 frames") || !strings.Contains(stderr.String(), "writing") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

func TestExportSplit(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	dir := exportStore(t, base, true)
	tests := []struct {
		name   string
		split  bool
		files  []string
		stderr string
	}{
		{"cut", false, []string{"clip.mp4"}, "run again with --split"},
		{"split", true, []string{"clip.mp4", "clip-2.mp4"}, "the rest follows in the next part"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			args := []string{"export", "--data", dir, "--camera", "cam1", "--from", base.Format(time.RFC3339),
				"--to", base.Add(11 * time.Second).Format(time.RFC3339), "-o", filepath.Join(outDir, "clip.mp4")}
			if tc.split {
				args = append(args, "--split")
			}
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), args, Env{Stdout: &stdout, Stderr: &stderr}); code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr.String())
			}
			got, _ := filepath.Glob(filepath.Join(outDir, "*"))
			if len(got) != len(tc.files) {
				t.Fatalf("files %v, want %v", got, tc.files)
			}
			for _, f := range tc.files {
				if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
					t.Error(err)
				}
			}
			if !strings.Contains(stderr.String(), tc.stderr) || !strings.Contains(stderr.String(), "codec parameters changed there") {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
			// 0..2 s before the change: 50 frames; then 2..4 s and 8..11 s.
			if !strings.Contains(stderr.String(), "H264, 50 frames") || tc.split != strings.Contains(stderr.String(), "H264, 125 frames") {
				t.Errorf("frame counts:\n%s", stderr.String())
			}
		})
	}
}

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"now", now, true},
		{"-10m", now.Add(-10 * time.Minute), true},
		{"-1h30m", now.Add(-90 * time.Minute), true},
		{" -90s ", now.Add(-90 * time.Second), true},
		{"2026-11-25T11:00:00Z", now.Add(-time.Hour), true},
		{"2026-11-25T13:00:00+02:00", now.Add(-time.Hour), true},
		{"2026-11-25T11:00:00.5Z", now.Add(-time.Hour + 500*time.Millisecond), true},
		{"10m", time.Time{}, false},
		{"-", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"2026-11-25 11:00", time.Time{}, false},
	}
	for _, tc := range tests {
		got, err := parseTimeArg(tc.in, now)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseTimeArg(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseTimeArg: command-line times are outside input; parsing must never
// panic, and an accepted relative time is never after now.
func FuzzParseTimeArg(f *testing.F) {
	for _, s := range []string{"now", "-10m", "2026-11-25T11:00:00Z", "-", "-9999999999h", "2026-13-45T99:00:00Z"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTimeArg(s, now)
		if err == nil && strings.HasPrefix(strings.TrimSpace(s), "-") && got.After(now) {
			t.Fatalf("%q: %v is after now", s, got)
		}
	})
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		name string
		tty  bool
	}{
		{"terminal", true},
		{"pipe", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			b := newProgressBar(&buf, tc.tty, func() time.Time { return clock })
			for i := range 1000 {
				clock = clock.Add(100 * time.Millisecond)
				b.update(progressOf(i))
			}
			b.done()
			out := buf.String()
			if tc.tty {
				if n := strings.Count(out, "\r"); n < 900 || strings.Count(out, "\n") != 1 {
					t.Errorf("terminal: %d redraws, %d newlines", n, strings.Count(out, "\n"))
				}
			} else if n := strings.Count(out, "\n"); n < 8 || n > 30 || strings.Contains(out, "\r") {
				t.Errorf("pipe: %d lines:\n%s", n, out)
			}
			if !strings.Contains(out, "100%") {
				t.Errorf("never reached 100%%:\n%s", out)
			}
		})
	}
}

// progressOf is update i of 1000: a scan, then a write of 1 GiB.
func progressOf(i int) clip.Progress {
	if i < 500 {
		return clip.Progress{Phase: clip.PhaseScan, Done: int64(i+1) * 2, Total: 1000}
	}
	return clip.Progress{Phase: clip.PhaseWrite, Done: int64(i-499) << 21, Total: 1 << 30}
}

func TestExportCancelled(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	dir := exportStore(t, base, false)
	out := filepath.Join(t.TempDir(), "clip.mp4")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as after SIGINT
	var stdout, stderr bytes.Buffer
	code := Main(ctx, []string{"export", "--data", dir, "--camera", "cam1", "--from", base.Format(time.RFC3339),
		"--to", base.Add(10 * time.Second).Format(time.RFC3339), "-o", out}, Env{Stdout: &stdout, Stderr: &stderr})
	if code != 1 || !strings.Contains(stderr.String(), "context canceled") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 0 {
		t.Fatalf("files left behind: %v", left)
	}
}
