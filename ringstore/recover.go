package ringstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// scanBuf is the read size of slot scans.
const scanBuf = 8 << 20

// scanOpts tunes scanSlot.
type scanOpts struct {
	// accept rejects records by header (generation rules); a rejected
	// record ends the scan.
	accept func(recordHeader) bool
	// resync skips a corrupt stretch (bad magic, bad CRC) when an accepted
	// record follows it, instead of ending the scan there; corrupt is then
	// called with the stretch. Recovery never resyncs (a torn tail ends the
	// log); Rebuild and Check do, so one bad record loses nothing else.
	resync  bool
	corrupt func(off, next int64)
	// readSize is the read-ahead; 0 means scanBuf (8 MiB). Cursors reading a
	// few records use less.
	readSize int
}

// scanSlot decodes the records of a slot file from offset from up to size,
// in order, stopping at the first one that is torn, corrupt or not accepted.
// For each record it calls fn with its offset (the record aliases a buffer
// that is reused after fn returns); fn returns false to stop. It returns the
// end of the last record; err is set only for read errors.
func scanSlot(f vfs.File, size, from int64, o scanOpts, fn func(off int64, r *record, raw []byte) bool) (int64, error) {
	sc := slotReader{f: f, size: size, readSize: int64(o.readSize)}
	if sc.readSize <= 0 {
		sc.readSize = scanBuf
	}
	off := from
	var lastGen uint64
	for off+recMinSize <= size {
		r, raw, err := sc.recordAt(off, o.accept)
		if err != nil {
			return off, err
		}
		if r == nil && off%batchAlign != 0 && off > from {
			// A batch after a torn tail starts at the next 4 KiB boundary
			// under a newer generation (see recover).
			next := align(off, batchAlign)
			newer := func(h recordHeader) bool { return h.gen > lastGen && (o.accept == nil || o.accept(h)) }
			if next+recMinSize <= size {
				if r, raw, err = sc.recordAt(next, newer); err != nil {
					return off, err
				}
				if r != nil {
					off = next
				}
			}
		}
		if r == nil {
			if !o.resync {
				return off, nil
			}
			next, err := sc.nextRecord(off, o.accept)
			if err != nil || next < 0 {
				return off, err
			}
			if o.corrupt != nil {
				o.corrupt(off, next)
			}
			off = next
			continue
		}
		lastGen = r.gen
		if !fn(off, r, raw) {
			return off + int64(r.length), nil
		}
		off += int64(r.length)
	}
	return off, nil
}

// slotReader reads a slot file through a large buffer.
type slotReader struct {
	f        vfs.File
	size     int64
	readSize int64
	buf      []byte
	bufOff   int64
}

// window returns the bytes [off, off+need) (fewer at the end of the slot),
// reading ahead scanBuf bytes when they are not buffered.
func (sr *slotReader) window(off int64, need int) ([]byte, error) {
	rel := off - sr.bufOff
	if rel >= 0 && rel+int64(need) <= int64(len(sr.buf)) {
		return sr.buf[rel:], nil
	}
	n := min(max(int64(need), sr.readSize), sr.size-off)
	if n <= 0 {
		return nil, nil
	}
	if int64(cap(sr.buf)) < n {
		sr.buf = make([]byte, n)
	}
	sr.buf = sr.buf[:n]
	sr.bufOff = off
	m, err := sr.f.ReadAt(sr.buf, off)
	if m < len(sr.buf) {
		if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read slot at %d: %w", off, err)
		}
		sr.buf = sr.buf[:m]
	}
	return sr.buf, nil
}

// recordAt decodes the record at off; nil when there is none there.
func (sr *slotReader) recordAt(off int64, accept func(recordHeader) bool) (*record, []byte, error) {
	b, err := sr.window(off, recHeaderSize)
	if err != nil || len(b) < recHeaderSize {
		return nil, nil, err
	}
	h, err := parseHeader(b)
	if err != nil || off+int64(h.length) > sr.size || (accept != nil && !accept(h)) {
		return nil, nil, nil
	}
	if len(b) < h.length {
		if b, err = sr.window(off, h.length); err != nil || len(b) < h.length {
			return nil, nil, err
		}
	}
	raw := b[:h.length]
	r, err := decodeRecord(raw)
	if err != nil {
		return nil, nil, nil
	}
	return r, raw, nil
}

// nextRecord finds the first offset after off, 8-byte aligned, holding an
// accepted valid record; -1 when there is none before the end of the slot.
func (sr *slotReader) nextRecord(off int64, accept func(recordHeader) bool) (int64, error) {
	for p := off + recAlign; p+recMinSize <= sr.size; p += recAlign {
		b, err := sr.window(p, recHeaderSize)
		if err != nil {
			return -1, err
		}
		if len(b) < 4 || string(b[:4]) != recMagic {
			continue
		}
		r, _, err := sr.recordAt(p, accept)
		if err != nil {
			return -1, err
		}
		if r != nil {
			return p, nil
		}
	}
	return -1, nil
}

// recover brings the head slot's index up to date with its data, takes a
// new generation, and writes and syncs the open record.
func (s *Store) recover(ctx context.Context) error {
	s.openedAt = s.now()
	w := &s.w
	fresh := w.genCounter == 0
	var recs []*record
	var entries []indexEntry
	end := w.off
	if !fresh {
		if err := s.db.View(func(tx *bolt.Tx) error {
			w.headStreams = loadSlotStreams(tx, w.head)
			return nil
		}); err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
		f, release, err := s.acquire(w.head)
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
		defer release()
		ids := map[string]uint32{}
		for id, m := range s.metas {
			ids[m.name] = id
		}
		want := w.genCounter
		accept := func(h recordHeader) bool { return s.opts.knobs.skipGenCheck || h.gen == want }
		end, err = scanSlot(f, s.vol.SlotSize, w.off, scanOpts{accept: accept}, func(off int64, r *record, _ []byte) bool {
			if r.kind != KindFrames {
				return true
			}
			id, ok := ids[r.stream]
			if !ok {
				id = s.nextID
				s.nextID++
				ids[r.stream] = id
			}
			r.sid = id
			entries = append(entries, entryOf(r, w.head, off, int64(r.length)))
			recs = append(recs, &record{kind: KindFrames, sid: id, stream: r.stream, flags: r.flags, tracks: cloneTracks(r.tracks)})
			return true
		})
		if err != nil {
			return fmt.Errorf("open store %s: recover slot %d: %w", s.dir, w.head, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
		// The records found may sit only in the page cache (the process
		// died, the machine did not): make them durable before the index
		// points at them.
		if len(entries) > 0 {
			if err := f.Datasync(); err != nil {
				return fmt.Errorf("open store %s: sync recovered records of slot %d: %w", s.dir, w.head, err)
			}
		}
	}
	gen := w.genCounter + 1
	if !fresh && end == 0 {
		// The head holds no valid record (its first batch was lost): it
		// starts over under the new generation, as a rebuild would see it.
		s.slotMu.Lock()
		s.slots[w.head].baseGen = gen
		s.slotMu.Unlock()
	}
	if fresh {
		s.slots[w.head] = slotHdr{baseGen: gen, state: slotHead}
	}
	if end > w.off {
		// Records after the checkpoint (the write position, 4 KiB
		// aligned); nothing found leaves the head's end as it was.
		s.applyPart(recs, entries, end)
	}
	s.metaMu.Lock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.putHeadLocked(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bktMeta).Delete([]byte("pending")); err != nil {
			return err
		}
		return putMeta(tx, gen, w.head, w.off)
	})
	s.metaMu.Unlock()
	if err != nil {
		return fmt.Errorf("open store %s: index recovered records: %w", s.dir, err)
	}
	w.queue = w.queue[:0]
	clear(w.dirty)
	w.gen, w.genCounter = gen, gen
	if len(entries) > 0 {
		s.log.Info("recovered records after the checkpoint", "slot", w.head, "records", len(entries), "end", end)
	}
	open := &record{kind: KindOpen, time0: s.openedAt.UnixNano()}
	if w.off+int64(open.encodedSize()) > s.vol.SlotSize {
		// The head is full: recycling a slot just to hold the open record
		// would evict footage before anything new is recorded. The first
		// batch carries it instead.
		w.pendingOpen = open
		return nil
	}
	if err := s.writeBatch([]*record{open}); err != nil {
		return fmt.Errorf("open store %s: write the open record: %w", s.dir, err)
	}
	if err := s.commitIndex(); err != nil {
		return fmt.Errorf("open store %s: %w", s.dir, err)
	}
	return nil
}
