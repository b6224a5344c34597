package clip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// storeSegment is footage to record: a recording placed at base, with a
// gap of cause before it when gap is set.
type storeSegment struct {
	rec  recording
	base time.Time
	gap  *ringstore.GapCause
}

// recordStore writes segments into a new real store, as the recorder does
// (SetTracks when parameters change, MarkGap, one commit per second of
// footage), and returns it open.
func recordStore(t *testing.T, segs ...storeSegment) *ringstore.Store {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 64 << 20, SlotSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := ringstore.Open(ctx, dir, ringstore.Options{CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	w, err := st.Stream("cam1")
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs {
		if seg.gap != nil {
			w.MarkGap(*seg.gap, seg.base)
		}
		if err := w.SetTracks(seg.rec.tracks); err != nil {
			t.Fatal(err)
		}
		var lastCommit time.Time
		for _, f := range seg.rec.frames {
			f.Time = seg.base.Add(f.Time.Sub(time.Unix(0, 0)))
			if _, err := w.Append(f); err != nil {
				t.Fatalf("append %v: %v", f.Time, err)
			}
			if f.Time.Sub(lastCommit) >= time.Second {
				lastCommit = f.Time
				if err := st.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestExportFromStore runs the exporter against the real ring store: the
// contract (reads start at the keyframe at or before From, Tracks on the
// first frame and on changes, Gap before the frame after a hole) and the
// result checked by ffprobe and ffmpeg.
func TestExportFromStore(t *testing.T) {
	a := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 4, audio: true})
	b := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 4, width: 480, audio: true})
	offline := ringstore.GapCameraOffline
	// 0..4 s at 320x240; 4..8 s at 480x360; camera offline 8..10 s;
	// 10..14 s at 480x360.
	st := recordStore(t,
		storeSegment{rec: a, base: t0},
		storeSegment{rec: b, base: sec(4)},
		storeSegment{rec: b, base: sec(10), gap: &offline},
	)
	src := SourceFunc(st.Frames)

	t.Run("mid-GOP start", func(t *testing.T) {
		path, p := export(t, src, Options{Stream: "cam1", From: sec(1.5), To: sec(3.5)})
		if !p.Start.Equal(sec(1)) || p.CutReason != nil {
			t.Fatalf("start %v cut %v, want the 1 s keyframe and no cut", p.Start.Sub(t0), p.CutReason)
		}
		checkClip(t, path, []string{"h264", "aac"}, "avc1", 63, 2.52)
	})
	t.Run("parameter change", func(t *testing.T) {
		path, p := export(t, src, Options{Stream: "cam1", From: sec(2), To: sec(6)})
		if !errors.Is(p.CutReason, ErrParamsChanged) || !p.CutAt.Equal(sec(4)) {
			t.Fatalf("cut %v at %v, want ErrParamsChanged at 4 s", p.CutReason, p.CutAt.Sub(t0))
		}
		checkClip(t, path, []string{"h264", "aac"}, "avc1", 50, 2)
	})
	t.Run("across the gap", func(t *testing.T) {
		path, p := export(t, src, Options{Stream: "cam1", From: sec(6), To: sec(12)})
		if len(p.Gaps) != 1 || p.Gaps[0].Cause != ringstore.GapCameraOffline {
			t.Fatalf("gaps %+v, want one camera-offline gap", p.Gaps)
		}
		// 6..8 s and 10..12 s: 100 frames over 6 s of real time.
		checkClip(t, path, []string{"h264", "aac"}, "avc1", 100, 6)
	})
	t.Run("no footage", func(t *testing.T) {
		_, err := Prepare(context.Background(), src, Options{Stream: "cam1", From: sec(20), To: sec(30)})
		if !errors.Is(err, ErrNoFootage) {
			t.Fatalf("Prepare after the footage: %v, want ErrNoFootage", err)
		}
	})
}
