package recorder_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

func openStore(t *testing.T) *ringstore.Store {
	t.Helper()
	return openStoreB(t)
}

// openStoreB formats and opens a 64 MiB store in a temporary directory,
// closed at cleanup.
func openStoreB(t testing.TB) *ringstore.Store {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 64 << 20, SlotSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := ringstore.Open(ctx, dir, ringstore.Options{CommitInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// TestRecordIntoStore records two cameras through a Manager into a real
// ring store, drops one camera's connection, and reads everything back:
// track tables, keyframes first, the gap with its cause, and video that
// ffmpeg decodes without an error.
func TestRecordIntoStore(t *testing.T) {
	checkLeaks(t)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{
		"front": {Video: camsim.H264, Audio: camsim.AAC},
		"back":  {Video: camsim.H265, Audio: camsim.PCMU},
	})
	st := openStore(t)
	m, err := recorder.NewManager(recorder.ManagerOptions{
		Writer:  func(name string) (recorder.FrameWriter, error) { return st.Stream(name) },
		Session: testOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	for _, name := range []string{"front", "back"} {
		if err := m.Add(recorder.Camera{Name: name, URL: sim.URL(name)}); err != nil {
			t.Fatal(err)
		}
	}
	recorded := func(name string, n uint64) func() bool {
		return func() bool { s, _ := m.Status(name); return s.FramesRecorded >= n }
	}
	waitFor(t, 15*time.Second, "front recording", recorded("front", 60))
	waitFor(t, 15*time.Second, "back recording", recorded("back", 60))
	if err := sim.Fault("front", camsim.Fault{Kind: camsim.FaultDrop}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "front to reconnect", func() bool {
		s, _ := m.Status("front")
		return s.Connects == 2 && s.State == recorder.StateRecording
	})
	s0, _ := m.Status("front")
	waitFor(t, 15*time.Second, "front to record on", recorded("front", s0.FramesRecorded+50))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(5 * time.Second)
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	_, gaps, err := st.Spans("front", start.Add(-5*time.Second), end)
	if err != nil {
		t.Fatal(err)
	}
	offline := false
	for _, g := range gaps {
		offline = offline || g.Cause == ringstore.GapCameraOffline
	}
	if !offline {
		t.Errorf("front: gaps %+v, want one with cause camera offline", gaps)
	}
	for _, c := range []struct {
		name   string
		codecs []ringstore.Codec
		format string
	}{
		{"front", []ringstore.Codec{ringstore.CodecH264, ringstore.CodecAAC}, "h264"},
		{"back", []ringstore.Codec{ringstore.CodecH265, ringstore.CodecPCMU}, "hevc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			video, n := readBack(t, st, c.name, start.Add(-5*time.Second), end, c.codecs)
			if n < 60 {
				t.Fatalf("read back %d frames", n)
			}
			decodes(t, c.format, video)
		})
	}
}

// readBack reads a stream's frames and returns its video as Annex B.
func readBack(t *testing.T, st *ringstore.Store, name string, from, to time.Time, codecs []ringstore.Codec) ([]byte, int) {
	t.Helper()
	r, err := st.Frames(name, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var annexB bytes.Buffer
	n := 0
	var tracks []ringstore.Track
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Tracks != nil {
			tracks = f.Tracks
		}
		if n == 0 && (f.Tracks == nil || !f.Key || f.Track != 0) {
			t.Fatalf("first frame: tracks %v key %v track %d", f.Tracks, f.Key, f.Track)
		}
		n++
		if len(tracks) != len(codecs) {
			t.Fatalf("track table %v, want %v", tracks, codecs)
		}
		for i, c := range codecs {
			if tracks[i].Codec != c {
				t.Fatalf("track %d is %v, want %v", i, tracks[i].Codec, c)
			}
		}
		if f.Track != 0 {
			continue
		}
		var au h264.AVCC
		if err := au.Unmarshal(f.Data); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		for _, nalu := range au {
			annexB.Write([]byte{0, 0, 0, 1})
			annexB.Write(nalu)
		}
	}
	return annexB.Bytes(), n
}

// decodes checks that ffmpeg decodes the elementary stream without error.
func decodes(t *testing.T, format string, es []byte) {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg not installed")
		}
		t.Skip("ffmpeg not installed: recorded video not decoded")
	}
	path := filepath.Join(t.TempDir(), "video."+format)
	if err := os.WriteFile(path, es, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-f", format, "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg decoding the recorded %s: %v\n%s", format, err, out)
	}
}

// TestStoreBackpressure records a 4 Mbit/s camera into a store whose
// per-stream backlog (256 KiB) is smaller than one commit interval (1 s) of
// it: the store answers ErrBackpressure, the session drops whole GOPs, marks
// the gaps, and what was kept still decodes.
func TestStoreBackpressure(t *testing.T) {
	checkLeaks(t)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"cam": {Video: camsim.H264, Bitrate: 4e6}})
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 64 << 20, SlotSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := ringstore.Open(ctx, dir, ringstore.Options{CommitInterval: time.Second, MaxPendingBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the session's cleanup stops it
	w, err := st.Stream("cam")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := runSession(t, recorder.Camera{Name: "cam", URL: sim.URL("cam")}, w, testOptions())
	waitFor(t, 20*time.Second, "drops and recording", func() bool {
		ss := s.Status()
		return ss.Gaps[ringstore.GapDropped] >= 2 && ss.FramesRecorded >= 50
	})
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(5 * time.Second)
	_, gaps, err := st.Spans("cam", start.Add(-5*time.Second), end)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, g := range gaps {
		if g.Cause == ringstore.GapDropped {
			dropped++
		}
	}
	if dropped == 0 {
		t.Errorf("store gaps %+v, want frames-dropped ones", gaps)
	}
	video, _ := readBack(t, st, "cam", start.Add(-5*time.Second), end, []ringstore.Codec{ringstore.CodecH264})
	decodes(t, "h264", video)
	if ss := s.Status(); ss.FramesDropped == 0 {
		t.Errorf("status counts no dropped frames: %+v", ss)
	}
}
