package ringstore

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// spanBreak is the hole between two records of a stream beyond which Spans
// and readers report a gap even though none was marked.
const spanBreak = 5 * time.Second

// lookback is how far before from a read looks for the record or keyframe
// covering from, in 64 s index buckets (about 34 minutes).
const lookback = 32

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Streams lists the streams that hold footage, by name.
func (s *Store) Streams() ([]StreamInfo, error) {
	s.metaMu.RLock()
	out := make([]StreamInfo, 0, len(s.metas))
	for _, m := range s.metas {
		if m.bytes <= 0 {
			continue
		}
		first := m.first
		if fl := s.retentionFloor(m.name); fl > first {
			if fl > m.last {
				continue // all of it is past the stream's retention
			}
			first = fl
		}
		out = append(out, StreamInfo{Name: m.name, Tracks: cloneTracks(m.tracks), First: unixTime(first), Last: unixTime(m.last), Bytes: m.bytes})
	}
	s.metaMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// streamID returns the id and summary of a stream by name.
func (s *Store) streamID(name string) (uint32, streamMeta, bool) {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	for id, m := range s.metas {
		if m.name == name {
			return id, *m, true
		}
	}
	return 0, streamMeta{}, false
}

// indexBounds narrows an index walk of stream id over [from, to) to where the
// stream has records: from its first record's time0 to just after its last
// frame. The index is walked one 64 s bucket at a time, so a range far
// wider than the footage (an export "from 1970", a search to a distant
// "to" of a camera that stopped) would otherwise cost a seek per empty
// bucket.
func (s *Store) indexBounds(id uint32, from, to int64) (int64, int64) {
	s.metaMu.RLock()
	m := s.metas[id]
	s.metaMu.RUnlock()
	if m == nil || m.first == 0 {
		return from, to
	}
	return max(from, m.first), min(to, m.last+1)
}

// Spans returns the continuous footage of stream within [from, to), and the
// gaps between (and before) them with their causes. Gaps from corrupt
// records are found by reads and Check, not here.
func (s *Store) Spans(stream string, from, to time.Time) ([]Span, []Gap, error) {
	if !from.Before(to) {
		return nil, nil, nil
	}
	if ok, spans, gaps, err := s.spansWithFloor(stream, from, to); ok {
		return spans, gaps, err
	}
	return s.spansFrom(stream, from, to)
}

// spansFrom is Spans without the retention floor.
func (s *Store) spansFrom(stream string, from, to time.Time) ([]Span, []Gap, error) {
	id, meta, ok := s.streamID(stream)
	f, t := from.UnixNano(), to.UnixNano()
	var spans []Span
	var gaps []Gap
	if ok {
		var cur *Span
		var prevLast int64
		err := s.db.View(func(tx *bolt.Tx) error {
			lo, hi := s.indexBounds(id, f-lookback*bucketPeriod, t)
			return streamRange(tx, id, lo, hi, func(e indexEntry) bool {
				if e.last < f {
					prevLast = max(prevLast, e.last)
					return true
				}
				marked := e.flags&recGap != 0
				cause := GapUnknown
				if marked {
					cause = e.cause
				}
				joined := prevLast != 0 && !marked && e.time0-prevLast <= int64(spanBreak)
				switch {
				case cur == nil:
					// The first record reaching into the range: footage
					// before it, if any, joins it unless there is a gap.
					start := laterOf(time.Unix(0, e.time0), from)
					if joined {
						start = from
					} else if e.time0 > f {
						if prevLast == 0 && !marked && s.evicted.Load() && f < meta.first {
							cause = GapEvicted
						}
						gaps = append(gaps, Gap{Start: laterOf(unixTime(prevLast), from), End: time.Unix(0, e.time0), Cause: cause})
					}
					cur = &Span{Start: start}
				case !joined:
					spans = append(spans, *cur)
					gaps = append(gaps, Gap{Start: unixTime(prevLast), End: time.Unix(0, e.time0), Cause: cause})
					cur = &Span{Start: time.Unix(0, e.time0)}
				}
				if end := earlierOf(time.Unix(0, e.last), to); end.After(cur.End) {
					cur.End = end
				}
				prevLast = max(prevLast, e.last)
				return true
			})
		})
		if err != nil {
			return nil, nil, fmt.Errorf("spans of %s: %w", stream, err)
		}
		if cur != nil {
			spans = append(spans, *cur)
		}
	}
	if len(spans) == 0 {
		cause := GapUnknown
		if ok && s.evicted.Load() && t <= meta.first {
			cause = GapEvicted
		}
		gaps = []Gap{{Start: from, End: to, Cause: cause}}
	}
	return spans, gaps, nil
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// readEntry reads and verifies the record an index entry points to. It
// returns ErrEvicted when the slot was recycled since the entry was written
// (never recycled bytes), and an errBadRecord error when the bytes fail
// their checks (corruption).
func (s *Store) readEntry(e indexEntry) (*record, []byte, error) {
	skip := s.opts.knobs.skipGenCheck
	s.slotMu.RLock()
	before := s.slots[e.slot].baseGen
	s.slotMu.RUnlock()
	if !skip && before > e.gen {
		return nil, nil, ErrEvicted
	}
	f, release, err := s.acquire(int(e.slot))
	if err != nil {
		return nil, nil, err
	}
	defer release()
	buf := make([]byte, e.length)
	if _, err := f.ReadAt(buf, e.offset); err != nil {
		return nil, nil, fmt.Errorf("read slot %d at %d: %w", e.slot, e.offset, err)
	}
	s.slotMu.RLock()
	after := s.slots[e.slot].baseGen
	s.slotMu.RUnlock()
	if !skip && after != before {
		return nil, nil, ErrEvicted
	}
	r, err := decodeRecord(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("slot %d offset %d: %w", e.slot, e.offset, err)
	}
	if !skip && (r.gen != e.gen || r.time0 != e.time0 || r.kind != KindFrames) {
		return nil, nil, fmt.Errorf("slot %d offset %d: %w: gen %d time %d, index says gen %d time %d",
			e.slot, e.offset, errBadRecord, r.gen, r.time0, e.gen, e.time0)
	}
	return r, buf, nil
}

// ReadFrame is a frame returned by FrameReader.Next.
type ReadFrame struct {
	Frame
	// Tracks is the track table in force: set on the first frame returned
	// and whenever it changed since; nil otherwise.
	Tracks []Track
	// Gap is set when footage is missing right before this frame.
	Gap *Gap
}

// FrameReader reads one stream's frames in time order. It is not safe for
// concurrent use. Frame data stays valid after later calls.
type FrameReader struct {
	s        *Store
	id       uint32
	to       int64
	next     int64 // time0 to continue the index scan from
	lastKey  []byte
	started  bool
	prevLast int64
	tracks   []Track
	queue    []ReadFrame
	gapNext  *Gap // a gap (evicted or corrupt records) before the next record
	done     bool
}

// Frames returns a reader of stream's frames from the keyframe at or before
// from (or the first keyframe after it) up to, not including, to.
func (s *Store) Frames(stream string, from, to time.Time) (*FrameReader, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if fl := s.retentionFloor(stream); fl > from.UnixNano() {
		from = time.Unix(0, fl)
	}
	r := &FrameReader{s: s, to: to.UnixNano(), next: from.UnixNano()}
	id, _, ok := s.streamID(stream)
	if !ok {
		r.done = true
		return r, nil
	}
	r.id = id
	if lo, _ := s.indexBounds(id, from.UnixNano(), r.to); lo > from.UnixNano() {
		from, r.next = time.Unix(0, lo), lo
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		e, ok, err := keyAtOrBefore(tx, id, from.UnixNano(), lookback)
		if ok {
			r.next = e.time0
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("frames of %s: %w", stream, err)
	}
	return r, nil
}

// Next returns the next frame, or io.EOF after the last.
func (r *FrameReader) Next() (ReadFrame, error) {
	for len(r.queue) == 0 {
		if r.done {
			return ReadFrame{}, io.EOF
		}
		if err := r.fill(); err != nil {
			return ReadFrame{}, err
		}
	}
	f := r.queue[0]
	r.queue = r.queue[1:]
	return f, nil
}

// fill loads the next few index entries and their records into the queue.
func (r *FrameReader) fill() error {
	var es []indexEntry
	lo, hi := r.s.indexBounds(r.id, r.next, r.to)
	err := r.s.db.View(func(tx *bolt.Tx) error {
		return streamRange(tx, r.id, lo, hi, func(e indexEntry) bool {
			if r.lastKey != nil && string(e.key()) <= string(r.lastKey) {
				return true
			}
			es = append(es, e)
			return len(es) < 16
		})
	})
	if err != nil {
		return fmt.Errorf("frames: index: %w", err)
	}
	if len(es) == 0 {
		r.done = true
		return nil
	}
	for _, e := range es {
		r.lastKey = e.key()
		r.next = e.time0
		if !r.started && e.flags&recKey == 0 {
			continue
		}
		rec, _, err := r.s.readEntry(e)
		var gap *Gap
		switch {
		case errors.Is(err, ErrEvicted):
			gap = &Gap{Start: unixTime(e.time0), End: unixTime(e.last), Cause: GapEvicted}
		case errors.Is(err, errBadRecord):
			gap = &Gap{Start: unixTime(e.time0), End: unixTime(e.last), Cause: GapCorrupt}
		case err != nil:
			return fmt.Errorf("frames: %w", err)
		}
		if gap != nil {
			if r.started {
				r.pendingGap(gap)
			}
			continue
		}
		r.addRecord(rec)
	}
	return nil
}

// pendingGap remembers a gap for the next frame returned.
func (r *FrameReader) pendingGap(g *Gap) {
	if r.gapNext == nil {
		g.Start = unixTime(r.prevLast)
		r.gapNext = g
	}
}

func (r *FrameReader) addRecord(rec *record) {
	var gap *Gap
	if r.gapNext != nil {
		gap = r.gapNext
		r.gapNext = nil
	}
	if r.started && rec.flags&recGap != 0 {
		start := unixTime(r.prevLast)
		if gap != nil {
			start = gap.Start
		}
		gap = &Gap{Start: start, End: unixTime(rec.time0), Cause: rec.gapCause}
	} else if r.started && gap == nil && rec.time0-r.prevLast > int64(spanBreak) {
		gap = &Gap{Start: unixTime(r.prevLast), End: unixTime(rec.time0), Cause: GapUnknown}
	}
	if gap != nil {
		gap.End = unixTime(rec.time0)
	}
	var tracks []Track
	if rec.flags&recTracks != 0 && (!r.started || !sameTracks(rec.tracks, r.tracks)) {
		r.tracks = cloneTracks(rec.tracks)
		tracks = r.tracks
	}
	if !r.started {
		gap = nil
	}
	r.started = true
	for _, f := range rec.frames {
		if f.Time.UnixNano() >= r.to {
			continue
		}
		rf := ReadFrame{Frame: f, Tracks: tracks, Gap: gap}
		tracks, gap = nil, nil
		r.queue = append(r.queue, rf)
	}
	r.prevLast = max(r.prevLast, rec.lastTime())
}

func sameTracks(a, b []Track) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Codec != y.Codec || x.ClockRate != y.ClockRate || x.Channels != y.Channels || len(x.Config) != len(y.Config) {
			return false
		}
		for j := range x.Config {
			if string(x.Config[j]) != string(y.Config[j]) {
				return false
			}
		}
	}
	return true
}

// Close releases the reader.
func (r *FrameReader) Close() error {
	r.done = true
	r.queue = nil
	return nil
}

// Record is one log record as returned by ReadAfter.
type Record struct {
	// Pos is the record's place in the log.
	Pos Position
	// Stream is the camera stream (empty for open and void records).
	Stream string
	Kind   RecordKind
	// Frames are the record's frames (KindFrames).
	Frames []Frame
	// Tracks is the track table the record carries, if any.
	Tracks []Track
	// Gap is the discontinuity the record starts with, if any.
	Gap *Gap
	// Raw is the record's bytes as stored (header to CRC).
	Raw []byte
}

// ReadAfter returns up to max records strictly after pos in log order (pad
// records are skipped). It returns ErrEvicted when pos's slot was recycled.
// An empty result means the cursor is at the end of what is durable.
func (s *Store) ReadAfter(pos Position, max int) ([]Record, error) {
	if max <= 0 {
		return nil, nil
	}
	type slotRef struct {
		i int
		h slotHdr
	}
	var order []slotRef
	s.slotMu.RLock()
	for i, h := range s.slots {
		if h.end > 0 {
			order = append(order, slotRef{i, h})
		}
	}
	s.slotMu.RUnlock()
	sort.Slice(order, func(a, b int) bool { return order[a].h.baseGen < order[b].h.baseGen })
	k := 0
	if pos != (Position{}) {
		k = -1
		for j, o := range order {
			if o.h.baseGen <= pos.Gen {
				k = j
			}
		}
		if k < 0 {
			return nil, fmt.Errorf("read after %+v: %w", pos, ErrEvicted)
		}
	}
	var out []Record
	for ; k < len(order) && len(out) < max; k++ {
		o := order[k]
		from := int64(0)
		skipFirst := false
		if pos != (Position{}) && o.h.baseGen <= pos.Gen && (k+1 == len(order) || order[k+1].h.baseGen > pos.Gen) {
			from, skipFirst = pos.Offset, true
		}
		f, release, err := s.acquire(o.i)
		if err != nil {
			return nil, err
		}
		var got []Record
		first := true
		accept := func(h recordHeader) bool { return s.opts.knobs.skipGenCheck || h.gen >= o.h.baseGen }
		_, err = scanSlot(f, o.h.end, from, scanOpts{accept: accept, readSize: 256 << 10}, func(off int64, r *record, raw []byte) bool {
			if first && skipFirst {
				first = false
				if r.gen != pos.Gen {
					got = nil
					return false
				}
				return true
			}
			first = false
			if r.kind != KindPad {
				got = append(got, exportRecord(off, raw))
			}
			return len(out)+len(got) < max
		})
		release()
		if err != nil {
			return nil, fmt.Errorf("read after %+v: slot %d: %w", pos, o.i, err)
		}
		s.slotMu.RLock()
		now := s.slots[o.i].baseGen
		s.slotMu.RUnlock()
		if now != o.h.baseGen {
			if len(out) == 0 {
				return nil, fmt.Errorf("read after %+v: slot %d recycled while reading: %w", pos, o.i, ErrEvicted)
			}
			return out, nil
		}
		out = append(out, got...)
	}
	return out, nil
}

// exportRecord copies a scanned record into a Record that owns its bytes.
func exportRecord(off int64, raw []byte) Record {
	own := append([]byte(nil), raw...)
	c, _ := decodeRecord(own) // raw decoded already
	out := Record{Pos: Position{Gen: c.gen, Offset: off}, Stream: c.stream, Kind: c.kind, Frames: c.frames, Tracks: c.tracks, Raw: own}
	if c.flags&recGap != 0 {
		out.Gap = &Gap{Start: unixTime(c.gapStart), End: unixTime(c.time0), Cause: c.gapCause}
	}
	return out
}
