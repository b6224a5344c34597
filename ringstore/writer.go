package ringstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writerState is owned by the writer goroutine (and by Open before the
// writer starts).
type writerState struct {
	head       int
	off        int64  // end of the written, durable records in the head slot
	gen        uint64 // generation records are written under
	genCounter uint64 // last generation handed out (persisted before use)

	headStreams map[uint32]*slotStream // per-stream summary of the head slot
	tracks      map[uint32][]Track     // track table in force per stream at the end of the last batch
	// time0 is the time0 of each stream's last record written by this
	// process. A record's time0 is never before its predecessor's, so
	// that index order (by time0) is log order: a commit tick that starts
	// with an audio frame lagging the video of the previous tick must not
	// sort before it, or readers return frames out of decoding order.
	time0       map[uint32]int64
	queue       []indexEntry    // durable records not yet in the index
	dirty       map[uint32]bool // stream summaries to persist
	buf         []byte
	pendingOpen *record // the open record, when the head had no room for it at Open
	err         error   // sticky: the writer can no longer write
	skipFinal   bool
}

func (w *writerState) init(m indexMeta) {
	w.head = m.head
	w.off = m.checkpoint
	w.gen = m.gen
	w.genCounter = m.gen
	w.headStreams = map[uint32]*slotStream{}
	w.tracks = map[uint32][]Track{}
	w.time0 = map[uint32]int64{}
	w.dirty = map[uint32]bool{}
}

// writeFault is a failed WriteAt or Datasync on a slot.
type writeFault struct {
	op   string // "write" or "sync"
	slot int
	err  error
}

func (e *writeFault) Error() string {
	return fmt.Sprintf("%s slot %d: %v", e.op, e.slot, e.err)
}

func (e *writeFault) Unwrap() error { return e.err }

// commit is one tick: take every stream's pending frames, write them as
// records, sync, acknowledge, index.
func (s *Store) commit() {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.w.err != nil {
		return
	}
	start := time.Now()
	maxSeq := s.seq.Load()
	var recs []*record
	var bytes int64
	type taken struct {
		w      *StreamWriter
		fs     []pendFrame
		chunks [][]byte
	}
	var batch []taken
	var nchunks int
	defer func() {
		// The pool keeps as many free chunks as this batch held: what the
		// streams are expected to need until the next tick.
		for _, t := range batch {
			s.chunks.put(t.chunks, nchunks)
			t.w.recycle(t.fs, t.chunks)
		}
	}()
	for _, sw := range s.writers() {
		fs, chunks, size := sw.take()
		if len(fs) == 0 {
			sw.recycle(fs, chunks)
			continue
		}
		batch = append(batch, taken{sw, fs, chunks})
		nchunks += len(chunks)
		cur, ok := s.w.tracks[sw.id]
		if !ok {
			s.metaMu.RLock()
			if m := s.metas[sw.id]; m != nil {
				cur = m.tracks
			}
			s.metaMu.RUnlock()
		}
		rs, after := buildRecords(sw.name, sw.id, cur, s.w.time0[sw.id], fs, chunks)
		s.w.tracks[sw.id] = after
		if len(rs) > 0 {
			s.w.time0[sw.id] = rs[len(rs)-1].time0
		}
		recs = append(recs, rs...)
		bytes += int64(size)
	}
	if len(recs) > 0 && s.w.pendingOpen != nil {
		recs = append([]*record{s.w.pendingOpen}, recs...)
		s.w.pendingOpen = nil
	}
	if len(recs) > 0 {
		if err := s.writeBatch(recs); err != nil {
			s.w.err = err
			s.alarm("no-slot", s.w.head, err)
			s.setFatal(err)
			return
		}
		s.setDurable(maxSeq)
		s.st.commitDone(time.Since(start), bytes)
	} else {
		s.setDurable(maxSeq)
	}
	s.st.tickDone(s.now())
	if len(recs) == 0 && len(s.w.queue) == 0 && len(s.w.dirty) == 0 {
		// Nothing to index: no transaction (the index is on an SSD; an
		// idle store does not wear it once a second).
		s.setIndexed(maxSeq)
	} else if err := s.commitIndex(); err != nil {
		s.alarm("index", -1, err)
	} else {
		s.setIndexed(maxSeq)
	}
	if s.opts.MaxAge > 0 {
		if err := s.evictOld(); err != nil {
			s.alarm("index", -1, err)
		}
	}
}

// writeBatch writes recs at the head, moving to the next slot when one is
// full and re-writing into the next slot when a write or sync fails. It
// returns only when every record is durable, or with a fatal error.
func (s *Store) writeBatch(recs []*record) error {
	for len(recs) > 0 {
		n, entries, end, err := s.writePart(recs)
		if err != nil {
			var wf *writeFault
			if !errors.As(err, &wf) {
				return err
			}
			s.alarm(wf.op, wf.slot, err)
			failed := voidBody{slot: uint32(s.w.head), gen: s.w.gen, offset: s.w.off}
			if err := s.advance(true); err != nil {
				return err
			}
			recs = append([]*record{{kind: KindVoid, time0: s.now().UnixNano(), void: failed}}, recs...)
			continue
		}
		if n > 0 {
			s.applyPart(recs[:n], entries, end)
		}
		recs = recs[n:]
		if len(recs) > 0 {
			if n == 0 && s.w.off == 0 {
				return fmt.Errorf("record of %d bytes does not fit in a slot of %d", recs[0].encodedSize(), s.vol.SlotSize)
			}
			if err := s.advance(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// writePart writes the prefix of recs that fits in the head slot after the
// current offset (padding to the batch alignment when all fit), syncs, and
// returns how many records it placed, their index entries and the new end.
func (s *Store) writePart(recs []*record) (n int, entries []indexEntry, end int64, err error) {
	head, size := s.w.head, s.vol.SlotSize
	f, release, err := s.acquire(head)
	if err != nil {
		return 0, nil, 0, &writeFault{op: "write", slot: head, err: err}
	}
	defer release()
	buf := s.w.buf[:0]
	bufOff, cur := s.w.off, s.w.off
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := f.WriteAt(buf, bufOff); err != nil {
			return &writeFault{op: "write", slot: head, err: err}
		}
		bufOff += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	for n < len(recs) {
		r := recs[n]
		r.gen = s.w.gen
		if s.evicted.Load() {
			r.flags |= recEvicted
		}
		sz := int64(r.encodedSize())
		if cur+sz > size {
			break
		}
		if r.sizes != nil {
			// Frames from the streams' chunks: copied through buf in
			// writeChunk pieces, the CRC taken as they go.
			start := len(buf)
			buf = appendRecordHead(buf, r, int(sz))
			written := len(buf) - start
			crc := crc32.Update(0, castagnoli, buf[start:])
			for _, p := range r.pieces {
				crc = crc32.Update(crc, castagnoli, p)
				written += len(p)
				for len(p) > 0 {
					if len(buf) >= writeChunk {
						if err := flush(); err != nil {
							return 0, nil, 0, err
						}
					}
					k := min(len(p), max(writeChunk-len(buf), 0))
					buf = append(buf, p[:k]...)
					p = p[k:]
				}
			}
			pad := len(buf)
			buf = appendZeros(buf, int(sz)-written-recCRCSize)
			crc = crc32.Update(crc, castagnoli, buf[pad:])
			buf = binary.LittleEndian.AppendUint32(buf, crc)
		} else {
			buf = encodeRecord(buf, r)
		}
		if r.kind == KindFrames {
			entries = append(entries, entryOf(r, head, cur, sz))
		}
		r.length = int(sz)
		cur += sz
		n++
		if len(buf) >= writeChunk {
			if err := flush(); err != nil {
				return 0, nil, 0, err
			}
		}
	}
	if n == len(recs) {
		e := align(cur, batchAlign)
		if e > cur && e-cur < recMinSize {
			e += batchAlign
		}
		if e > cur && e <= size {
			buf = encodeRecord(buf, padRecord(s.w.gen, int(e-cur)))
			cur = e
		}
	}
	if err := flush(); err != nil {
		return 0, nil, 0, err
	}
	if cap(buf) <= 2*writeChunk {
		s.w.buf = buf[:0]
	}
	if cur > s.w.off {
		if err := f.Datasync(); err != nil {
			return 0, nil, 0, &writeFault{op: "sync", slot: head, err: err}
		}
	}
	return n, entries, cur, nil
}

func entryOf(r *record, slot int, off, size int64) indexEntry {
	return indexEntry{
		stream: r.sid, time0: r.time0, gen: r.gen, offset: off,
		slot: uint32(slot), length: uint32(size), last: r.lastTime(),
		frames: uint32(len(r.frames)), flags: uint8(r.flags), cause: r.gapCause, gapStart: r.gapStart,
	}
}

// applyPart records in memory that the records behind entries (now durable)
// end at end; recs supply stream names and track tables.
func (s *Store) applyPart(recs []*record, entries []indexEntry, end int64) {
	// The next batch starts 4 KiB aligned: its first write must not share a
	// sector with acknowledged records (a torn write can destroy a whole
	// sector). Batches end with a pad, so this only moves the write position
	// after a torn tail (recovery) or at the end of a slot; scans jump the
	// gap (see scanSlot).
	s.w.off = min(align(end, batchAlign), s.vol.SlotSize)
	s.w.queue = append(s.w.queue, entries...)
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	for _, r := range recs {
		if r.kind != KindFrames {
			continue
		}
		m := s.metas[r.sid]
		if m == nil {
			m = &streamMeta{id: r.sid, name: r.stream}
			s.metas[r.sid] = m
		}
		if r.flags&recTracks != 0 {
			m.tracks = cloneTracks(r.tracks)
		}
	}
	s.slotMu.Lock()
	defer s.slotMu.Unlock()
	h := &s.slots[s.w.head]
	h.end = end
	for i := range entries {
		e := &entries[i]
		if h.first == 0 || e.time0 < h.first {
			h.first = e.time0
		}
		h.last = max(h.last, e.last)
		ss := s.w.headStreams[e.stream]
		if ss == nil {
			ss = &slotStream{first: e.time0}
			s.w.headStreams[e.stream] = ss
		}
		ss.first = min(ss.first, e.time0)
		ss.last = max(ss.last, e.last)
		ss.bytes += int64(e.length)
		m := s.metas[e.stream]
		if m.first == 0 || e.time0 < m.first {
			m.first = e.time0
		}
		m.last = max(m.last, e.last)
		m.bytes += int64(e.length)
		s.w.dirty[e.stream] = true
	}
}

// putHeadLocked stages the queued entries, the head slot and dirty stream
// summaries in tx. The caller holds metaMu.
func (s *Store) putHeadLocked(tx *bolt.Tx) error {
	if err := putEntries(tx, s.w.queue); err != nil {
		return err
	}
	s.slotMu.RLock()
	h := s.slots[s.w.head]
	s.slotMu.RUnlock()
	if err := putSlot(tx, s.w.head, h, s.w.headStreams); err != nil {
		return err
	}
	for id := range s.w.dirty {
		if m := s.metas[id]; m != nil {
			if err := putStream(tx, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// commitIndex is the tick's index transaction.
func (s *Store) commitIndex() error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.putHeadLocked(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bktMeta).Put([]byte("stats"), s.runtimeStats()); err != nil {
			return err
		}
		return putMeta(tx, s.w.genCounter, s.w.head, s.w.off)
	})
	if err != nil {
		return fmt.Errorf("index commit: %w", err)
	}
	s.w.queue = s.w.queue[:0]
	clear(s.w.dirty)
	return nil
}

// advance makes the next usable slot the head, following the recycle order:
// raise its base generation in memory, then one index transaction that
// indexes what is durable in the old head, drops the new head's old entries
// and makes it the head; only then may it be written.
func (s *Store) advance(suspect bool) error {
	n := s.vol.Slots
	old := s.w.head
	next := -1
	var passed []int
	s.slotMu.RLock()
	for k := 1; k < n; k++ {
		c := (old + k) % n
		if s.slots[c].state == slotSuspect {
			passed = append(passed, c)
			continue
		}
		next = c
		break
	}
	s.slotMu.RUnlock()
	if next < 0 {
		if suspect {
			s.slotMu.Lock()
			s.slots[old].state = slotSuspect
			s.slotMu.Unlock()
		}
		return errors.New("no usable slot left: every other slot is suspect")
	}
	gen := s.w.genCounter + 1
	s.slotMu.Lock()
	if suspect {
		s.slots[old].state = slotSuspect
	} else {
		s.slots[old].state = slotSealed
	}
	evict := map[int]slotHdr{next: s.slots[next]}
	s.slots[next] = slotHdr{baseGen: gen, state: slotHead}
	for _, p := range passed {
		evict[p] = s.slots[p]
		s.slots[p] = slotHdr{baseGen: gen, state: slotSuspect}
	}
	s.slotMu.Unlock()

	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.putHeadLocked(tx); err != nil {
			return err
		}
		for c, h := range evict {
			if err := s.evictTx(tx, c, h, s.slots[c]); err != nil {
				return err
			}
		}
		return putMeta(tx, gen, next, 0)
	})
	if err != nil {
		return fmt.Errorf("index transaction moving the head to slot %d: %w", next, err)
	}
	s.w.queue = s.w.queue[:0]
	clear(s.w.dirty)
	s.w.head, s.w.off, s.w.gen, s.w.genCounter = next, 0, gen, gen
	s.w.headStreams = map[uint32]*slotStream{}
	return nil
}

// evictTx drops slot c's old contents (summary old) from the index, updates
// the stream summaries it held, and stores its new header. The caller holds
// metaMu; the head's per-stream summary must already be staged in tx.
func (s *Store) evictTx(tx *bolt.Tx, c int, old, now slotHdr) error {
	if _, err := dropSlotEntries(tx, c, old); err != nil {
		return err
	}
	ss := loadSlotStreams(tx, c)
	if len(ss) > 0 || old.end > 0 {
		s.evicted.Store(true)
		if err := tx.Bucket(bktMeta).Put([]byte("evicted"), []byte{1}); err != nil {
			return err
		}
	}
	need := map[uint32]bool{}
	for id, x := range ss {
		m := s.metas[id]
		if m == nil {
			continue
		}
		m.bytes -= x.bytes
		if m.bytes <= 0 {
			m.bytes, m.first = 0, 0
		} else if m.first <= x.last {
			need[id] = true
		}
		s.w.dirty[id] = true
	}
	n := s.vol.Slots
	for k := 1; k < n && len(need) > 0; k++ {
		c2 := (c + k) % n
		s.slotMu.RLock()
		h := s.slots[c2]
		s.slotMu.RUnlock()
		if h.end == 0 {
			continue
		}
		var st map[uint32]*slotStream
		if c2 == s.w.head {
			st = s.w.headStreams
		} else {
			st = loadSlotStreams(tx, c2)
		}
		for id := range need {
			if y, ok := st[id]; ok {
				s.metas[id].first = y.first
				delete(need, id)
			}
		}
	}
	for id := range need {
		s.metas[id].first = 0
	}
	for id := range ss {
		if m := s.metas[id]; m != nil {
			if err := putStream(tx, m); err != nil {
				return err
			}
		}
	}
	return putSlot(tx, c, now, nil)
}

// evictOld drops whole slots whose newest footage is older than MaxAge,
// oldest first.
func (s *Store) evictOld() error {
	cutoff := s.now().Add(-s.opts.MaxAge).UnixNano()
	n := s.vol.Slots
	for k := 1; k < n; k++ {
		c := (s.w.head + k) % n
		s.slotMu.RLock()
		h := s.slots[c]
		s.slotMu.RUnlock()
		if h.end == 0 {
			continue
		}
		if h.last >= cutoff {
			return nil
		}
		now := slotHdr{baseGen: h.baseGen, state: slotFree}
		if h.state == slotSuspect {
			now.state = slotSuspect
		}
		s.slotMu.Lock()
		s.slots[c] = now
		s.slotMu.Unlock()
		s.metaMu.Lock()
		err := s.db.Update(func(tx *bolt.Tx) error { return s.evictTx(tx, c, h, now) })
		s.metaMu.Unlock()
		if err != nil {
			return fmt.Errorf("evict slot %d past max age: %w", c, err)
		}
	}
	return nil
}
