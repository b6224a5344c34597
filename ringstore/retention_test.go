package ringstore

import (
	"context"
	"testing"
	"time"
)

// TestRetentionPerStream: cam1 limited to 5 minutes stops showing footage
// older than that (reads, spans, stream summary), cam2 without a limit keeps
// all of it, and removing the limit brings cam1's back (the bytes were only
// hidden, until the ring recycles them).
func TestRetentionPerStream(t *testing.T) {
	e := newEnv(t, 16<<20, 1<<20)
	now := testBase.Add(10 * time.Minute)
	e.opt.Now = func() time.Time { return now }
	s := e.open(t)
	defer s.Close()
	for _, name := range []string{"cam1", "cam2"} {
		w, err := s.Stream(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.SetTracks(h264Tracks(1)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 600; i++ { // one frame a second for 10 minutes, a keyframe every 10 s
			f := Frame{Track: 0, Time: testBase.Add(time.Duration(i) * time.Second), Key: i%10 == 0, Data: []byte{byte(i)}}
			if _, err := w.Append(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.SetRetention("cam1", 5*time.Minute)
	floor := now.Add(-5 * time.Minute)

	first := func(stream string) time.Time {
		r, err := s.Frames(stream, testBase, now)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		f, err := r.Next()
		if err != nil {
			t.Fatalf("%s: %v", stream, err)
		}
		return f.Time
	}
	if got := first("cam1"); got.Before(floor.Add(-10*time.Second)) || got.After(floor) {
		t.Errorf("cam1's first frame %v: want the keyframe at or before the retention floor %v (at most one GOP older)", got, floor)
	}
	if got := first("cam2"); !got.Equal(testBase) {
		t.Errorf("cam2 (no limit) first frame %v, want %v", got, testBase)
	}
	spans, gaps, err := s.Spans("cam1", testBase, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) == 0 || gaps[0].Cause != GapEvicted || !gaps[0].Start.Equal(testBase) || gaps[0].End.Before(floor.Add(-10*time.Second)) {
		t.Errorf("cam1 gaps %+v: want an evicted gap from %v to the floor", gaps, testBase)
	}
	for _, sp := range spans {
		if sp.End.Before(floor.Add(-10 * time.Second)) {
			t.Errorf("cam1 span %+v lies past its retention", sp)
		}
	}
	streams, _ := s.Streams()
	for _, si := range streams {
		if si.Name == "cam1" && si.First.Before(floor) {
			t.Errorf("Streams: cam1 first %v before the floor %v", si.First, floor)
		}
		if si.Name == "cam2" && !si.First.Equal(testBase) {
			t.Errorf("Streams: cam2 first %v", si.First)
		}
	}
	// Everything past the limit: nothing is returned, one evicted gap.
	s.SetRetention("cam1", time.Second)
	if spans, gaps, _ := s.Spans("cam1", testBase, now.Add(-time.Minute)); len(spans) != 0 || len(gaps) != 1 || gaps[0].Cause != GapEvicted {
		t.Errorf("fully expired range: spans %+v gaps %+v", spans, gaps)
	}
	s.SetRetention("cam1", 0)
	if got := first("cam1"); !got.Equal(testBase) {
		t.Errorf("after removing the limit, cam1 first frame %v, want %v", got, testBase)
	}
}
