package clip

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// fakeEntry is one frame of a fake stream, with what the store would attach
// to it: a new track table (SetTracks before it) or a gap before it.
type fakeEntry struct {
	frame  ringstore.Frame
	tracks []ringstore.Track
	gap    *ringstore.Gap
}

// fakeSource is a hand-written in-memory Source with the store's read
// semantics: reads start at the video keyframe at or before from, return
// frames with Time < to, set Tracks on the first frame and on changes, and
// reuse one buffer for Data (as a store reader may) so that callers holding
// on to Data are caught.
type fakeSource struct {
	streams map[string][]fakeEntry
	opens   atomic.Int64 // readers opened
	reads   atomic.Int64 // frames returned by all readers
}

func newFakeSource() *fakeSource { return &fakeSource{streams: map[string][]fakeEntry{}} }

// add appends a recording to a stream, shifted to start at base, with its
// track table set before its first frame and, when gap is set, a gap of
// that cause before it.
func (s *fakeSource) add(stream string, rec recording, base time.Time, gap *ringstore.GapCause) {
	es := s.streams[stream]
	for i, f := range rec.frames {
		f.Time = base.Add(f.Time.Sub(time.Unix(0, 0)))
		e := fakeEntry{frame: f}
		if i == 0 {
			e.tracks = rec.tracks
			if gap != nil && len(es) > 0 {
				e.gap = &ringstore.Gap{Start: es[len(es)-1].frame.Time, End: f.Time, Cause: *gap}
			}
		}
		es = append(es, e)
	}
	s.streams[stream] = es
}

func (s *fakeSource) Frames(stream string, from, to time.Time) (FrameReader, error) {
	s.opens.Add(1)
	es := s.streams[stream]
	hasVideo := false
	for _, e := range es {
		if e.tracks != nil {
			for _, t := range e.tracks {
				hasVideo = hasVideo || t.Codec.IsVideo()
			}
			break
		}
	}
	start := -1
	for i, e := range es {
		isStart := e.frame.Key && (!hasVideo || e.frame.Track == 0)
		if !isStart {
			continue
		}
		if !e.frame.Time.After(from) || start == -1 {
			start = i
		}
		if e.frame.Time.After(from) {
			break
		}
	}
	if start == -1 {
		start = len(es)
	}
	var table []ringstore.Track
	for _, e := range es[:start] {
		if e.tracks != nil {
			table = e.tracks
		}
	}
	return &fakeReader{es: es[start:], to: to, table: table, reads: &s.reads}, nil
}

type fakeReader struct {
	es     []fakeEntry
	to     time.Time
	table  []ringstore.Track
	sent   bool
	buf    []byte
	closed bool
	reads  *atomic.Int64
}

func (r *fakeReader) Next() (ringstore.ReadFrame, error) {
	for len(r.es) > 0 {
		e := r.es[0]
		r.es = r.es[1:]
		if e.tracks != nil {
			r.table, r.sent = e.tracks, false
		}
		if !e.frame.Time.Before(r.to) {
			continue
		}
		rf := ringstore.ReadFrame{Frame: e.frame, Gap: e.gap}
		if !r.sent {
			rf.Tracks, r.sent = r.table, true
		}
		r.reads.Add(1)
		r.buf = append(r.buf[:0], e.frame.Data...)
		rf.Data = r.buf
		return rf, nil
	}
	return ringstore.ReadFrame{}, io.EOF
}

func (r *fakeReader) Close() error {
	r.closed = true
	return nil
}

// syntheticRecording is footage that needs no ffmpeg: 25 fps H.264 (real
// parameter sets, synthetic slices, a keyframe a second) and 16 kHz AAC
// frames, times from time zero, for tests that do not decode.
func syntheticRecording(seconds int) recording {
	rec := recording{tracks: []ringstore.Track{
		{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{benchSPS, benchPPS}},
		{ID: 1, Codec: ringstore.CodecAAC, ClockRate: 16000, Channels: 1, Config: [][]byte{{0x14, 0x08}}},
	}}
	zero := time.Unix(0, 0)
	audio := time.Duration(0)
	for i := range seconds * 25 {
		at := time.Duration(i) * 40 * time.Millisecond
		for ; audio < at; audio += 64 * time.Millisecond {
			rec.frames = append(rec.frames, ringstore.Frame{Track: 1, Time: zero.Add(audio), Key: true, Data: make([]byte, 20+i%7)})
		}
		key := i%25 == 0
		rec.frames = append(rec.frames, ringstore.Frame{Time: zero.Add(at), Key: key, Data: avccFrame(200+i%50, key, i)})
	}
	return rec
}
