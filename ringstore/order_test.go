package ringstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestLaggingTrackKeepsDecodingOrder: a commit tick whose first frame is an
// audio frame older than the previous tick's first video frame (tracks'
// clocks lag each other; a camera's audio often trails its video) must
// still be read back after that tick's frames. Records are indexed by their
// first frame's time, so without the per-stream time0 floor the second
// record sorted before the first and readers returned video out of decoding
// order (MediaMTX's H.265 stream made exports that did not decode).
func TestLaggingTrackKeepsDecodingOrder(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	const frame = 40 * time.Millisecond
	w, err := s.Stream("cam")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(h264Tracks(1)); err != nil {
		t.Fatal(err)
	}
	var want []Frame
	add := func(track uint8, at time.Duration, key bool) {
		t.Helper()
		ft := testBase.Add(at)
		f := Frame{Track: track, Time: ft, Key: key || track == 1, Data: frameBytes("cam", track, ft, 64)}
		if _, err := w.Append(f); err != nil {
			t.Fatalf("append track %d at %v: %v", track, at, err)
		}
		want = append(want, f)
	}
	flush := func() {
		t.Helper()
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Tick 1: a keyframe and three more video frames.
	for i := range 4 {
		add(0, time.Duration(i)*frame, i == 0)
	}
	flush()
	// Tick 2 starts with audio 100 ms older than tick 1's first frame.
	add(1, -100*time.Millisecond, false)
	add(0, 4*frame, false)
	add(1, -36*time.Millisecond, false)
	add(0, 5*frame, false)
	flush()
	// Tick 3 again: audio older than tick 2's first video frame.
	add(1, 28*time.Millisecond, false)
	add(0, 6*frame, false)
	flush()

	check := func(s *Store, what string) {
		t.Helper()
		r, err := s.Frames("cam", testBase.Add(-time.Second), testBase.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for i, wf := range want {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("%s: frame %d: %v", what, i, err)
			}
			if got.Track != wf.Track || !got.Time.Equal(wf.Time) || !bytes.Equal(got.Data, wf.Data) {
				t.Fatalf("%s: frame %d read back as track %d at %v, want track %d at %v (append order)",
					what, i, got.Track, got.Time.Sub(testBase), wf.Track, wf.Time.Sub(testBase))
			}
		}
		if f, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: after the last frame: %+v %v", what, f.Frame, err)
		}
	}
	check(s, "open store")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = e.open(t)
	defer s.Close()
	check(s, "reopened store")
}
