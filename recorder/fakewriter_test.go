package recorder_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// fakeWriter is a FrameWriter that keeps what it is given and checks the
// store's contract on every call: frames only after SetTracks and only for
// known tracks, decoding time never backwards per track, video spans start
// at a keyframe, every video keyframe carries the parameter sets of the track
// table in-band, AVCC framing.
type fakeWriter struct {
	mu       sync.Mutex
	tracks   []ringstore.Track
	setCalls int
	frames   []ringstore.Frame
	gaps     []gapMark
	problems []string
	lastDTS  map[uint8]time.Time
	needKey  map[uint8]bool // the track's span has not had a keyframe yet
	// fail, when set, decides the error of each Append (nil: accept).
	fail func(f ringstore.Frame) error
	// panicOnce makes the next Append panic; panicGap the next MarkGap.
	panicOnce, panicGap bool
}

type gapMark struct {
	cause ringstore.GapCause
	at    time.Time
	after int // number of frames appended before the mark
}

func newFakeWriter() *fakeWriter {
	return &fakeWriter{lastDTS: map[uint8]time.Time{}, needKey: map[uint8]bool{}}
}

func (w *fakeWriter) SetTracks(tracks []ringstore.Track) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tracks = tracks
	w.setCalls++
	for _, t := range tracks {
		if t.Codec.IsVideo() {
			w.needKey[t.ID] = true
		}
	}
	return nil
}

func (w *fakeWriter) Append(f ringstore.Frame) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.panicOnce {
		w.panicOnce = false
		panic("fake writer: injected panic")
	}
	if w.fail != nil {
		if err := w.fail(f); err != nil {
			return 0, err
		}
	}
	w.check(f)
	f.Data = bytes.Clone(f.Data) // the session reuses the buffer
	w.frames = append(w.frames, f)
	return uint64(len(w.frames)), nil
}

func (w *fakeWriter) MarkGap(cause ringstore.GapCause, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.panicGap {
		w.panicGap = false
		panic("fake writer: injected panic in MarkGap")
	}
	if len(w.frames) > 0 && !at.Equal(w.frames[len(w.frames)-1].Time) && at.Before(w.frames[len(w.frames)-1].Time) {
		w.problem("gap marked at %v, before the last frame at %v", at, w.frames[len(w.frames)-1].Time)
	}
	w.gaps = append(w.gaps, gapMark{cause: cause, at: at, after: len(w.frames)})
	for id := range w.needKey {
		w.needKey[id] = true
	}
}

func (w *fakeWriter) problem(format string, a ...any) {
	if len(w.problems) < 20 {
		w.problems = append(w.problems, fmt.Sprintf("frame %d: ", len(w.frames))+fmt.Sprintf(format, a...))
	}
}

func (w *fakeWriter) check(f ringstore.Frame) {
	var tr *ringstore.Track
	for i := range w.tracks {
		if w.tracks[i].ID == f.Track {
			tr = &w.tracks[i]
		}
	}
	if tr == nil {
		w.problem("track %d not in the track table", f.Track)
		return
	}
	if f.DTSOffset < 0 {
		w.problem("negative DTS offset")
	}
	dts := f.Time.Add(-f.DTSOffset)
	if last, ok := w.lastDTS[f.Track]; ok && dts.Before(last) {
		w.problem("track %d decoding time went back %v", f.Track, last.Sub(dts))
	}
	w.lastDTS[f.Track] = dts
	if len(f.Data) == 0 {
		w.problem("empty frame")
	}
	if !tr.Codec.IsVideo() {
		if !f.Key {
			w.problem("audio frame not marked key")
		}
		return
	}
	if w.needKey[f.Track] && !f.Key {
		w.problem("video span starts without a keyframe")
	}
	if f.Key {
		w.needKey[f.Track] = false
	}
	var au h264.AVCC
	if err := au.Unmarshal(f.Data); err != nil {
		w.problem("bad AVCC: %v", err)
		return
	}
	if f.Key {
		for _, ps := range tr.Config {
			found := false
			for _, n := range au {
				if bytes.Equal(n, ps) {
					found = true
				}
			}
			if !found {
				w.problem("keyframe without the track table's parameter set %x in-band", ps[:min(len(ps), 4)])
			}
		}
	}
}

// snapshot returns copies of what the writer holds.
func (w *fakeWriter) snapshot() (tracks []ringstore.Track, frames []ringstore.Frame, gaps []gapMark, setCalls int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ringstore.Track(nil), w.tracks...), append([]ringstore.Frame(nil), w.frames...), append([]gapMark(nil), w.gaps...), w.setCalls
}

func (w *fakeWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.frames)
}

func (w *fakeWriter) gapCount(cause ringstore.GapCause) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, g := range w.gaps {
		if g.cause == cause {
			n++
		}
	}
	return n
}

// framesAfterLastGap counts video frames appended after the last gap mark.
func (w *fakeWriter) framesAfterLastGap() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.gaps) == 0 {
		return len(w.frames)
	}
	return len(w.frames) - w.gaps[len(w.gaps)-1].after
}

func (w *fakeWriter) checkProblems(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ recorder.FrameWriter = (*fakeWriter)(nil)
