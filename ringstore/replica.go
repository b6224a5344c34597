package ringstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file holds what a mirror needs from the store: decoding records
// shipped from another store (DecodeRecord), appending them as a replica
// (Replica), and finding where to resume by content (ResumeBefore).

// ErrBadRecord: bytes that are not a valid record (bad magic, length, CRC or
// body). DecodeRecord's errors wrap it.
var ErrBadRecord = errBadRecord

// backfillSep separates a stream's name from the source node in the name of
// its backfill stream. Camera stream names never contain it.
const backfillSep = "\x00"

// BackfillName is the name of the stream that holds the frames of stream,
// recorded by node source, that arrived older than the newest frames the
// store already held for their track (footage of a window both nodes
// recorded, or received after a role change). Readers merge it back with
// MergedFrames and MergedSpans.
func BackfillName(stream, source string) string { return stream + backfillSep + source }

// SplitBackfillName reports whether name is a backfill stream, and of which
// stream and source node.
func SplitBackfillName(name string) (stream, source string, ok bool) {
	return strings.Cut(name, backfillSep)
}

// DecodeRecord checks raw, one record as a store wrote it (header to CRC,
// exactly its length), and decodes it. Errors wrap ErrBadRecord. The Record
// owns raw; its Pos is zero.
func DecodeRecord(raw []byte) (Record, error) {
	h, err := parseHeader(raw)
	if err != nil {
		return Record{}, err
	}
	if h.length != len(raw) {
		return Record{}, fmt.Errorf("%w: length %d, %d bytes given", errBadRecord, h.length, len(raw))
	}
	r, err := decodeRecord(raw)
	if err != nil {
		return Record{}, err
	}
	out := Record{Pos: Position{Gen: r.gen}, Stream: r.stream, Kind: r.kind, Frames: r.frames, Tracks: r.tracks, Raw: raw}
	if r.flags&recGap != 0 {
		out.Gap = &Gap{Start: unixTime(r.gapStart), End: unixTime(r.time0), Cause: r.gapCause}
	}
	return out, nil
}

// ApplyOptions says how Replica.Apply takes one record.
type ApplyOptions struct {
	// Source is the node that recorded the record (names backfill streams);
	// "" means "peer".
	Source string
	// After, when set, skips the record's frames at or before it.
	After time.Time
	// Gap, when set, is marked before the first frame applied to each
	// destination stream (e.g. GapEvicted after the source's ring wrapped),
	// unless the record carries its own gap.
	Gap *Gap
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Seq is the append sequence number of the last frame taken (see
	// Store.WaitDurable); 0 when none was.
	Seq uint64
	// Main and Backfill count the frames appended to the stream itself and
	// to its backfill stream; Dropped those already held (re-sent).
	Main, Backfill, Dropped int
	// Newest is the newest frame time appended, zero when none.
	Newest time.Time
}

// Replica appends records shipped from another node's store into this one:
// same stream names, frame times, tracks and gaps. A frame older than its
// track's newest in the stream goes to the stream's backfill stream for its
// source (BackfillName), whose own newest drops frames sent twice; so the
// store's per-track monotonic rule holds and nothing recorded is thrown
// away. A Replica is safe for concurrent use; one per store.
type Replica struct {
	s  *Store
	mu sync.Mutex
	// last is the newest frame time per destination stream and track,
	// loaded from the store on a stream's first use.
	last map[string]map[uint8]int64
	// floor is the newest time a stream held when the Replica first used
	// it: after a restart the per-track times are not known, so a frame of
	// any track at or before it is treated as old.
	floor map[string]int64
	// cleared records the streams whose restart gap mark was dropped.
	cleared map[string]bool
	// sent is the newest frame time taken per (stream, source) and track
	// since the Replica was made: the source ships each track in time
	// order, so an older or equal frame is one it sent again (after a
	// reconnect) and is dropped.
	sent map[string]map[uint8]int64
	// tracks is the source's track table in force per (stream, source):
	// a record without a table continues the last one the source sent.
	tracks map[string][]Track
}

// NewReplica returns the replica writer of s.
func NewReplica(s *Store) *Replica {
	return &Replica{s: s, last: map[string]map[uint8]int64{}, floor: map[string]int64{}, cleared: map[string]bool{}, sent: map[string]map[uint8]int64{}, tracks: map[string][]Track{}}
}

// Apply appends rec's frames (KindFrames; other kinds are ignored). It does
// not wait for durability: wait for the returned Seq. On ErrBackpressure
// nothing of rec was taken only if Main+Backfill is 0; Apply retries it
// itself after a Flush, so callers see it only when the store cannot keep
// up at all.
func (r *Replica) Apply(rec Record, opts ApplyOptions) (ApplyResult, error) {
	var res ApplyResult
	if rec.Kind != KindFrames || len(rec.Frames) == 0 {
		return res, nil
	}
	if _, _, ok := SplitBackfillName(rec.Stream); ok {
		return res, fmt.Errorf("apply record of %q: a backfill stream is never shipped", rec.Stream)
	}
	src := opts.Source
	if src == "" {
		src = "peer"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	mainName, bfName := rec.Stream, BackfillName(rec.Stream, src)
	if len(bfName) > 255 {
		return res, fmt.Errorf("apply record of %q: backfill name over 255 bytes", rec.Stream)
	}
	after := int64(math.MinInt64)
	if !opts.After.IsZero() {
		after = opts.After.UnixNano()
	}
	if rec.Tracks != nil {
		r.tracks[bfName] = cloneTracks(rec.Tracks)
	}
	tracks := r.tracks[bfName]
	marked := map[string]bool{}
	var held map[heldKey]bool // main's frames over the record's span, loaded on need
	for _, f := range rec.Frames {
		t := f.Time.UnixNano()
		if t <= after {
			continue
		}
		if last, ok := r.sent[bfName][f.Track]; ok && t <= last {
			res.Dropped++
			continue
		}
		dest := mainName
		if r.isOld(mainName, f.Track, t) {
			dest = bfName
			if r.isOld(bfName, f.Track, t) || r.lastOf(bfName, f.Track) == t {
				res.Dropped++
				continue
			}
			if held == nil {
				var err error
				if held, err = r.held(mainName, rec.Frames); err != nil {
					return res, err
				}
			}
			if held[keyOf(f)] {
				// Sent again after this store restarted: the stream
				// holds it already.
				res.Dropped++
				continue
			}
		}
		w, err := r.writer(dest, mainName)
		if err != nil {
			return res, err
		}
		if !marked[dest] {
			marked[dest] = true
			r.prepare(w, tracks, rec.Gap, opts.Gap)
		}
		seq, err := r.append(w, f)
		if err != nil {
			return res, fmt.Errorf("apply record of %s to %q: %w", rec.Stream, dest, err)
		}
		r.last[dest][f.Track] = t
		if r.sent[bfName] == nil {
			r.sent[bfName] = map[uint8]int64{}
		}
		r.sent[bfName][f.Track] = t
		res.Seq = seq
		if dest == mainName {
			res.Main++
		} else {
			res.Backfill++
		}
		if f.Time.After(res.Newest) {
			res.Newest = f.Time
		}
	}
	return res, nil
}

// heldKey identifies a frame's content.
type heldKey struct {
	track uint8
	t     int64
	key   bool
	crc   uint32
	n     int
}

func keyOf(f Frame) heldKey {
	return heldKey{track: f.Track, t: f.Time.UnixNano(), key: f.Key, crc: crc32.Checksum(f.Data, castagnoli), n: len(f.Data)}
}

// held returns the frames stream holds (committed) over the span of fs.
func (r *Replica) held(stream string, fs []Frame) (map[heldKey]bool, error) {
	lo, hi := fs[0].Time, fs[0].Time
	for _, f := range fs {
		lo, hi = earlierOf(lo, f.Time), laterOf(hi, f.Time)
	}
	out := map[heldKey]bool{}
	fr, err := r.s.Frames(stream, lo, hi.Add(1))
	if err != nil {
		return nil, fmt.Errorf("apply record of %s: read what it holds: %w", stream, err)
	}
	defer fr.Close()
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("apply record of %s: read what it holds: %w", stream, err)
		}
		if !f.Time.Before(lo) {
			out[keyOf(f.Frame)] = true
		}
	}
}

// append appends f, flushing and retrying while the stream's backlog is full.
func (r *Replica) append(w *StreamWriter, f Frame) (uint64, error) {
	for range 100 {
		seq, err := w.Append(f)
		if !errors.Is(err, ErrBackpressure) {
			return seq, err
		}
		r.s.kickCommit()
		time.Sleep(10 * time.Millisecond)
	}
	return 0, ErrBackpressure
}

// kickCommit asks the writer for a commit now, without waiting.
func (s *Store) kickCommit() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// prepare sets the destination's tracks (the source's in force) and gap
// before the first frame of a record applied to it.
func (r *Replica) prepare(w *StreamWriter, tracks []Track, recGap, gap *Gap) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !r.cleared[w.name] {
		// Stream() marks a restart gap for a stream reopened after a
		// restart of this store; the replica's footage continues the
		// source's, whose own gaps the records carry.
		r.cleared[w.name] = true
		w.gap = nil
	}
	if tracks != nil && !sameTracks(tracks, w.tracks) {
		w.setTracksLocked(tracks)
	}
	switch {
	case recGap != nil:
		w.gap = &gapMark{cause: recGap.Cause, at: recGap.Start.UnixNano()}
	case gap != nil:
		w.gap = &gapMark{cause: gap.Cause, at: gap.Start.UnixNano()}
	}
}

// writer returns the stream writer of dest, loading its newest times and
// giving a new backfill stream the main stream's tracks.
func (r *Replica) writer(dest, mainName string) (*StreamWriter, error) {
	w, err := r.s.Stream(dest)
	if err != nil {
		return nil, fmt.Errorf("apply to %q: %w", dest, err)
	}
	r.load(dest)
	if dest != mainName {
		w.mu.Lock()
		if len(w.tracks) == 0 {
			if mw, err := r.s.Stream(mainName); err == nil {
				mw.mu.Lock()
				ts := cloneTracks(mw.tracks)
				mw.mu.Unlock()
				w.setTracksLocked(ts)
			}
		}
		w.mu.Unlock()
	}
	return w, nil
}

// load fills the newest times of stream from the store on first use.
func (r *Replica) load(stream string) {
	if _, ok := r.last[stream]; ok {
		return
	}
	r.last[stream] = map[uint8]int64{}
	r.floor[stream] = math.MinInt64
	if _, m, ok := r.s.streamID(stream); ok && m.last != 0 {
		r.floor[stream] = m.last
	}
}

func (r *Replica) lastOf(stream string, track uint8) int64 {
	r.load(stream)
	if t, ok := r.last[stream][track]; ok {
		return t
	}
	return r.floor[stream]
}

// isOld reports whether a frame of track at t may not be appended to stream.
func (r *Replica) isOld(stream string, track uint8, t int64) bool {
	r.load(stream)
	if l, ok := r.last[stream][track]; ok {
		return t < l
	}
	return t < r.floor[stream] || (r.floor[stream] != math.MinInt64 && t == r.floor[stream])
}

// ResumeBefore returns a position to pass to ReadAfter so that every record
// of stream holding frames after t is read: the position of a record of
// the stream that ends at or before t (the zero Position, the start of the
// log, when there is none within about half an hour before t).
func (s *Store) ResumeBefore(stream string, t time.Time) (Position, error) {
	id, m, ok := s.streamID(stream)
	if !ok || t.IsZero() {
		return Position{}, nil
	}
	ns := t.UnixNano()
	if ns >= m.last {
		ns = m.last
	}
	var pos Position
	err := s.db.View(func(tx *bolt.Tx) error {
		return streamRange(tx, id, ns-lookback*bucketPeriod, m.last+1, func(e indexEntry) bool {
			if e.last > t.UnixNano() {
				return false
			}
			pos = Position{Gen: e.gen, Offset: e.offset}
			return true
		})
	})
	if err != nil {
		return Position{}, fmt.Errorf("resume point of %s at %v: %w", stream, t, err)
	}
	return pos, nil
}

// NewestByStream returns the newest frame time held per camera stream (backfill
// streams are not listed).
func (s *Store) NewestByStream() map[string]time.Time {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	out := map[string]time.Time{}
	for _, m := range s.metas {
		if m.bytes <= 0 || m.last == 0 {
			continue
		}
		if _, _, ok := SplitBackfillName(m.name); ok {
			continue
		}
		if t := unixTime(m.last); t.After(out[m.name]) {
			out[m.name] = t
		}
	}
	return out
}

// BytesAfter returns how many bytes of indexed records the log holds after
// p (the zero Position: the whole log): a cursor's distance from the head.
func (s *Store) BytesAfter(p Position) int64 {
	s.slotMu.RLock()
	defer s.slotMu.RUnlock()
	var n int64
	cur, curBase := -1, uint64(0)
	for i, h := range s.slots {
		if h.end <= 0 {
			continue
		}
		if p == (Position{}) || h.baseGen > p.Gen {
			n += h.end
			continue
		}
		if h.baseGen >= curBase {
			cur, curBase = i, h.baseGen
		}
	}
	if cur >= 0 && p != (Position{}) {
		n += max(0, s.slots[cur].end-p.Offset)
	}
	return n
}
