package ringstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"time"
)

// Backfill: footage is immutable, and when two nodes recorded the same
// window (an isolated ex-primary kept recording before it learned it was
// fenced) both recordings are kept. The store's per-track monotonic rule
// stays: a Replica puts frames older than their track's newest into a
// separate stream per (name, source node), BackfillName. Reads merge them
// back: MergedFrames returns the stream and its backfill streams as runs
// from one keyframe to the next (each decodable on its own) in time order,
// and never returns a frame twice (the same track, time, key flag and
// bytes, e.g. a frame re-sent after a crash that landed in both); MergedSpans
// returns the union of their spans.

// backfillStreams lists the backfill streams of stream, by name.
func (s *Store) backfillStreams(stream string) []string {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	var out []string
	for _, m := range s.metas {
		if name, _, ok := SplitBackfillName(m.name); ok && name == stream && m.bytes > 0 {
			out = append(out, m.name)
		}
	}
	sort.Strings(out)
	return out
}

// MergedSpans is Spans over stream and its backfill streams together: their
// spans joined, and the gaps left between with the stream's own causes.
func (s *Store) MergedSpans(stream string, from, to time.Time) ([]Span, []Gap, error) {
	spans, gaps, err := s.Spans(stream, from, to)
	if err != nil {
		return nil, nil, err
	}
	bfs := s.backfillStreams(stream)
	if len(bfs) == 0 {
		return spans, gaps, nil
	}
	for _, name := range bfs {
		sp, _, err := s.Spans(name, from, to)
		if err != nil {
			return nil, nil, err
		}
		spans = append(spans, sp...)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	var merged []Span
	for _, sp := range spans {
		if n := len(merged); n > 0 && !sp.Start.After(merged[n-1].End) {
			merged[n-1].End = laterOf(merged[n-1].End, sp.End)
			continue
		}
		merged = append(merged, sp)
	}
	var out []Gap
	cur := from
	for i := 0; i <= len(merged); i++ {
		end := to
		if i < len(merged) {
			end = merged[i].Start
		}
		if end.After(cur) {
			out = append(out, Gap{Start: cur, End: end, Cause: causeOver(gaps, cur, end)})
		}
		if i < len(merged) {
			cur = merged[i].End
		}
	}
	return merged, out, nil
}

// causeOver returns the cause of the first of gaps overlapping [a, b).
func causeOver(gaps []Gap, a, b time.Time) GapCause {
	for _, g := range gaps {
		if g.Start.Before(b) && g.End.After(a) {
			return g.Cause
		}
	}
	return GapUnknown
}

// MergedFrames is Frames over stream and its backfill streams: runs of
// frames from one video keyframe to the next (a frame each for audio-only
// streams), from all of them, ordered by their first frame's time, each
// frame at most once. Tracks is set whenever the table in force changes,
// including when the next run comes from another recording.
func (s *Store) MergedFrames(stream string, from, to time.Time) (*MergedReader, error) {
	names := append([]string{stream}, s.backfillStreams(stream)...)
	m := &MergedReader{seen: map[mergeKey]bool{}}
	for _, n := range names {
		r, err := s.Frames(n, from, to)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("merged frames of %s: %w", stream, err)
		}
		m.srcs = append(m.srcs, &runSource{r: r})
	}
	return m, nil
}

// MergedReader reads a stream merged with its backfill streams. It is not
// safe for concurrent use.
type MergedReader struct {
	srcs     []*runSource
	queue    []ReadFrame
	tracks   []Track // the table last returned
	lastTime time.Time
	seen     map[mergeKey]bool
}

type mergeKey struct {
	track uint8
	t     int64
	key   bool
	n     int
	crc   uint32
}

// runSource reads one stream's frames a run at a time.
type runSource struct {
	r      *FrameReader
	tracks []Track // the table in force after the last frame read
	peek   *ReadFrame
	peekT  []Track // the table in force at peek
	run    []ReadFrame
	runT   []Track // the table in force for run
	eof    bool
}

// next fills src.run with the next run; empty at the end.
func (src *runSource) next() error {
	src.run = src.run[:0]
	for {
		var f ReadFrame
		var ts []Track
		if src.peek != nil {
			f, ts, src.peek = *src.peek, src.peekT, nil
		} else {
			if src.eof {
				return nil
			}
			var err error
			f, err = src.r.Next()
			if errors.Is(err, io.EOF) {
				src.eof = true
				return nil
			}
			if err != nil {
				return err
			}
			if f.Tracks != nil {
				src.tracks = f.Tracks
			}
			ts = src.tracks
		}
		if len(src.run) > 0 && startsRun(f, ts) {
			src.peek, src.peekT = &f, ts
			return nil
		}
		if len(src.run) == 0 {
			src.runT = ts
		} else if !sameTracks(ts, src.runT) {
			// A table change inside a run (parameters changed without
			// a keyframe): end the run here so the change is reported.
			src.peek, src.peekT = &f, ts
			return nil
		}
		src.run = append(src.run, f)
	}
}

// startsRun reports whether f begins a new run: a video keyframe, or any
// frame of a stream without video.
func startsRun(f ReadFrame, tracks []Track) bool {
	video := false
	for _, t := range tracks {
		if t.Codec.IsVideo() {
			video = true
			if t.ID == f.Track {
				return f.Key
			}
		}
	}
	return !video
}

// Next returns the next frame, or io.EOF after the last.
func (m *MergedReader) Next() (ReadFrame, error) {
	for len(m.queue) == 0 {
		var best *runSource
		for _, src := range m.srcs {
			if len(src.run) == 0 {
				if err := src.next(); err != nil {
					return ReadFrame{}, err
				}
			}
			if len(src.run) > 0 && (best == nil || src.run[0].Time.Before(best.run[0].Time)) {
				best = src
			}
		}
		if best == nil {
			return ReadFrame{}, io.EOF
		}
		m.take(best)
	}
	f := m.queue[0]
	m.queue = m.queue[1:]
	return f, nil
}

// take queues best's run, minus frames already returned.
func (m *MergedReader) take(src *runSource) {
	first := true
	for _, f := range src.run {
		k := mergeKey{track: f.Track, t: f.Time.UnixNano(), key: f.Key, n: len(f.Data), crc: crc32.Checksum(f.Data, castagnoli)}
		if m.seen[k] {
			continue
		}
		m.seen[k] = true
		f.Tracks = nil
		if first && !sameTracks(src.runT, m.tracks) {
			m.tracks = src.runT
			f.Tracks = cloneTracks(src.runT)
		}
		if f.Gap != nil && !m.lastTime.IsZero() {
			if !f.Gap.End.After(m.lastTime) {
				f.Gap = nil
			} else if f.Gap.Start.Before(m.lastTime) {
				g := *f.Gap
				g.Start = m.lastTime
				f.Gap = &g
			}
		}
		first = false
		if f.Time.After(m.lastTime) {
			m.lastTime = f.Time
		}
		m.queue = append(m.queue, f)
	}
	src.run = src.run[:0]
	m.prune()
}

// prune forgets keys of frames a minute older than the newest returned:
// a frame can only be seen twice within one run's reach of another.
func (m *MergedReader) prune() {
	if len(m.seen) < 4096 {
		return
	}
	limit := m.lastTime.Add(-time.Minute)
	for k := range m.seen {
		if k.t < limit.UnixNano() {
			delete(m.seen, k)
		}
	}
}

// Close releases the reader.
func (m *MergedReader) Close() error {
	for _, src := range m.srcs {
		src.r.Close()
	}
	m.queue = nil
	return nil
}
