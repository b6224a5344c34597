package ringstore

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// StreamWriter appends frames of one camera stream. Its methods are safe for
// concurrent use, but frames of one track must arrive in time order.
type StreamWriter struct {
	s    *Store
	name string
	id   uint32

	mu            sync.Mutex
	frames        []pendFrame
	chunks        [][]byte // the pending bytes, in chunks from the store's pool (see chunkSize)
	size          int      // pending bytes
	tracks        []Track
	tracksChanged bool
	gap           *gapMark
	last          map[uint8]int64
	// spareFrames and spareChunks are the slices of the last written
	// batch, reused by the next one (the chunks themselves go back to the
	// store's pool).
	spareFrames []pendFrame
	spareChunks [][]byte
}

// pendFrame is an appended frame waiting for the next commit; its payload is
// the logical bytes [off, off+n) of its stream's pending chunks.
type pendFrame struct {
	track     uint8
	t         int64
	dts       time.Duration
	key       bool
	off, n    int
	tracks    []Track // the new track table, when tracksSet
	tracksSet bool
	gap       *gapMark
}

type gapMark struct {
	cause GapCause
	at    int64
}

// Stream returns the writer for the named stream, creating it on first use.
// Names are 1 to 255 bytes.
func (s *Store) Stream(name string) (*StreamWriter, error) {
	if name == "" || len(name) > 255 {
		return nil, fmt.Errorf("stream name %q: must be 1 to 255 bytes", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if w, ok := s.streams[name]; ok {
		return w, nil
	}
	w := &StreamWriter{s: s, name: name, last: map[uint8]int64{}}
	s.metaMu.RLock()
	var old *streamMeta
	for _, m := range s.metas {
		if m.name == name {
			old = m
			break
		}
	}
	s.metaMu.RUnlock()
	if old != nil {
		w.id = old.id
		w.setTracksLocked(old.tracks)
		w.tracksChanged = false
		// The writer's previous run ended with the store: the next
		// record carries the restart gap.
		at := old.last
		if at == 0 {
			at = s.openedAt.UnixNano()
		}
		w.gap = &gapMark{cause: GapStoreRestart, at: at}
	} else {
		w.id = s.nextID
		s.nextID++
	}
	s.streams[name] = w
	return w, nil
}

// Name returns the stream's name.
func (w *StreamWriter) Name() string { return w.name }

// SetTracks declares the stream's tracks; call it before the first frame and
// whenever codec parameters change. The next frame's record carries the table.
func (w *StreamWriter) SetTracks(tracks []Track) error {
	seen := map[uint8]bool{}
	for _, t := range tracks {
		if seen[t.ID] {
			return fmt.Errorf("stream %s: track id %d used twice", w.name, t.ID)
		}
		seen[t.ID] = true
	}
	if tracksSize(tracks) > 1<<20 {
		return fmt.Errorf("stream %s: track table over 1 MiB", w.name)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setTracksLocked(tracks)
	return nil
}

func (w *StreamWriter) setTracksLocked(tracks []Track) {
	w.tracks = cloneTracks(tracks)
	w.tracksChanged = true
}

// MarkGap records a discontinuity: the next frame starts a new span, and the
// gap before it has this cause.
func (w *StreamWriter) MarkGap(cause GapCause, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gap = &gapMark{cause: cause, at: at.UnixNano()}
}

// Append takes a copy of f for the next commit and returns its sequence
// number (see Store.WaitDurable). It never waits for I/O: it returns
// ErrBackpressure when the stream's backlog is full, ErrNonMonotonic when f's
// decoding time (Time - DTSOffset) is before the previous frame's of its
// track, ErrClosed after Close.
func (w *StreamWriter) Append(f Frame) (uint64, error) {
	s := w.s
	if s.isClosed() {
		return 0, ErrClosed
	}
	if int64(len(f.Data)) > s.vol.SlotSize/4 {
		return 0, fmt.Errorf("stream %s: frame of %d bytes is over a quarter slot (%d)", w.name, len(f.Data), s.vol.SlotSize/4)
	}
	if f.Time.IsZero() {
		return 0, fmt.Errorf("stream %s: frame without a time", w.name)
	}
	if f.DTSOffset < 0 {
		return 0, fmt.Errorf("stream %s: negative DTS offset %v", w.name, f.DTSOffset)
	}
	t := f.Time.UnixNano()
	// Frames arrive in decoding order: with B-frames presentation time goes
	// back and forth, decoding time (Time - DTSOffset) never goes back.
	dts := t - int64(f.DTSOffset)
	w.mu.Lock()
	defer w.mu.Unlock()
	if last, ok := w.last[f.Track]; ok && dts < last {
		return 0, fmt.Errorf("stream %s track %d: decoding time %v before %v: %w", w.name, f.Track,
			time.Unix(0, dts), time.Unix(0, last), ErrNonMonotonic)
	}
	if int64(w.size+len(f.Data)) > s.opts.MaxPendingBytes && len(w.frames) > 0 {
		return 0, ErrBackpressure
	}
	w.last[f.Track] = dts
	pf := pendFrame{track: f.Track, t: t, dts: f.DTSOffset, key: f.Key, off: w.size, n: len(f.Data)}
	if w.tracksChanged {
		pf.tracks, pf.tracksSet = w.tracks, true
		w.tracksChanged = false
	}
	if w.gap != nil {
		pf.gap = w.gap
		w.gap = nil
	}
	w.appendBytes(f.Data)
	w.frames = append(w.frames, pf)
	return s.seq.Add(1), nil
}

// appendBytes copies b to the end of the pending chunks. The caller holds mu.
func (w *StreamWriter) appendBytes(b []byte) {
	for len(b) > 0 {
		n := len(w.chunks)
		if n == 0 || len(w.chunks[n-1]) == chunkSize {
			w.chunks = append(w.chunks, w.s.chunks.get())
			n++
		}
		c := w.chunks[n-1]
		k := min(len(b), chunkSize-len(c))
		w.chunks[n-1] = append(c, b[:k]...)
		w.size += k
		b = b[k:]
	}
}

// take hands the pending frames and their chunks to the writer and resets
// the stream's pending state.
func (w *StreamWriter) take() ([]pendFrame, [][]byte, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fs, chunks, size := w.frames, w.chunks, w.size
	w.frames, w.chunks, w.size = w.spareFrames[:0], w.spareChunks[:0], 0
	w.spareFrames, w.spareChunks = nil, nil
	return fs, chunks, size
}

// recycle keeps the slices of a written batch for the next tick; the
// caller has given the chunks themselves back to the store's pool.
func (w *StreamWriter) recycle(fs []pendFrame, chunks [][]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(fs)
	clear(chunks)
	if cap(fs) <= 4096 {
		w.spareFrames = fs[:0]
	}
	if cap(chunks) <= 4096 {
		w.spareChunks = chunks[:0]
	}
}

// writers returns the stream writers ordered by id.
func (s *Store) writers() []*StreamWriter {
	s.mu.Lock()
	ws := make([]*StreamWriter, 0, len(s.streams))
	for _, w := range s.streams {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	sort.Slice(ws, func(i, j int) bool { return ws[i].id < ws[j].id })
	return ws
}

// buildRecords turns one stream's pending frames (their bytes in chunks)
// into records: a new record at every video keyframe, track change or gap
// mark, and when the payload would pass maxRecordBytes. cur is the track
// table in force before the first frame; the table in force after the last
// is returned. A record's time0 is its first frame's time, but never before
// floor (the time0 of the stream's previous record) nor its predecessor's in
// this batch: streams interleave tracks whose clocks lag each other, and the
// index orders a stream's records by time0.
func buildRecords(name string, id uint32, cur []Track, floor int64, fs []pendFrame, chunks [][]byte) ([]*record, []Track) {
	var recs []*record
	var r *record
	payload, start := 0, 0
	end := func() {
		if r != nil {
			r.pieces = pieces(r.pieces, chunks, start, start+payload)
		}
	}
	for i := range fs {
		pf := &fs[i]
		if pf.tracksSet {
			cur = pf.tracks
		}
		video, hasVideo := trackKinds(cur, pf.track)
		startKey := pf.key && (video || !hasVideo)
		if r == nil || (startKey && video) || pf.tracksSet || pf.gap != nil || payload+pf.n > maxRecordBytes {
			end()
			floor = max(floor, pf.t)
			r = &record{kind: KindFrames, stream: name, sid: id, time0: floor}
			if startKey {
				r.flags |= recKey
			}
			if startKey || pf.tracksSet {
				r.flags |= recTracks
				r.tracks = cur
			}
			if pf.gap != nil {
				r.flags |= recGap
				r.gapCause = pf.gap.cause
				r.gapStart = pf.gap.at
			}
			recs = append(recs, r)
			payload = 0
			start = pf.off
		}
		r.frames = append(r.frames, Frame{Track: pf.track, Time: time.Unix(0, pf.t), DTSOffset: pf.dts, Key: pf.key})
		r.sizes = append(r.sizes, pf.n)
		payload += pf.n
	}
	end()
	return recs, cur
}

// trackKinds reports whether track id is video in ts, and whether ts has any
// video track.
func trackKinds(ts []Track, id uint8) (video, hasVideo bool) {
	for _, t := range ts {
		if t.Codec.IsVideo() {
			hasVideo = true
			if t.ID == id {
				video = true
			}
		}
	}
	return video, hasVideo
}
