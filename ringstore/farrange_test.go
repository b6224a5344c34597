package ringstore

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestFarRangesWalkOnlyTheFootage: reads and searches over ranges far wider
// than a stream's footage (from 1971 to 2262) return what there
// is at once; the index walk is narrowed to the stream's records instead of
// seeking each of millions of empty 64 s buckets (without it this test takes
// minutes).
func TestFarRangesWalkOnlyTheFootage(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	defer s.Close()
	w, err := s.Stream("cam")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(h264Tracks(1)); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		ft := testBase.Add(time.Duration(i) * 40 * time.Millisecond)
		if _, err := w.Append(Frame{Track: 0, Time: ft, Key: i%25 == 0, Data: frameBytes("cam", 0, ft, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	from, to := time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC) // near int64 ns's end
	start := time.Now()
	r, err := s.Frames("cam", from, to)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	r.Close()
	spans, _, err := s.Spans("cam", from, to)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if n != 50 || len(spans) != 1 || !spans[0].Start.Equal(testBase) {
		t.Fatalf("read %d frames and spans %+v, want 50 frames in one span from %v", n, spans, testBase)
	}
	if took > 3*time.Second {
		t.Fatalf("reading 50 frames over a 291-year range took %v", took)
	}
}
