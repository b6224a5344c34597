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

// scanSlot decodes the records of a slot file from offset from, in order,
// stopping at the first one that is torn, corrupt or rejected by accept. For
// each record it calls fn with its offset (the record aliases a buffer that
// is reused after fn returns); fn returns false to stop. It returns the end
// of the last accepted record; err is set only for read errors.
func scanSlot(f vfs.File, size, from int64, accept func(recordHeader) bool, fn func(off int64, r *record, raw []byte) bool) (int64, error) {
	buf := make([]byte, 0, min(int64(scanBuf), max(size-from, 0)))
	bufOff := from // slot offset of buf[0]
	off := from
	fill := func(need int) error {
		// Make buf hold at least need bytes from off (less at the slot end).
		n := max(int64(need), int64(scanBuf))
		n = min(n, size-off)
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		bufOff = off
		m, err := f.ReadAt(buf, off)
		if m == len(buf) {
			return nil
		}
		if errors.Is(err, io.EOF) {
			buf = buf[:m]
			return nil
		}
		return fmt.Errorf("read slot at %d: %w", off, err)
	}
	for off+recMinSize <= size {
		rel := off - bufOff
		if rel < 0 || rel+recHeaderSize > int64(len(buf)) {
			if err := fill(recHeaderSize); err != nil {
				return off, err
			}
			rel = 0
		}
		h, err := parseHeader(buf[rel:])
		if err != nil || off+int64(h.length) > size || !accept(h) {
			return off, nil
		}
		if rel+int64(h.length) > int64(len(buf)) {
			if err := fill(h.length); err != nil {
				return off, err
			}
			rel = 0
			if int64(h.length) > int64(len(buf)) {
				return off, nil
			}
		}
		raw := buf[rel : rel+int64(h.length)]
		r, err := decodeRecord(raw)
		if err != nil {
			return off, nil
		}
		if !fn(off, r, raw) {
			return off + int64(h.length), nil
		}
		off += int64(h.length)
	}
	return off, nil
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
		f, err := s.file(w.head)
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
		ids := map[string]uint32{}
		for id, m := range s.metas {
			ids[m.name] = id
		}
		want := w.genCounter
		accept := func(h recordHeader) bool { return s.opts.knobs.skipGenCheck || h.gen == want }
		end, err = scanSlot(f, s.vol.SlotSize, w.off, accept, func(off int64, r *record, _ []byte) bool {
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
	}
	gen := w.genCounter + 1
	if fresh {
		s.slots[w.head] = slotHdr{baseGen: gen, state: slotHead}
	}
	s.applyPart(recs, entries, end)
	s.metaMu.Lock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.putHeadLocked(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bktMeta).Delete([]byte("pending")); err != nil {
			return err
		}
		return putMeta(tx, gen, w.head, end)
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
	if err := s.writeBatch([]*record{open}); err != nil {
		return fmt.Errorf("open store %s: write the open record: %w", s.dir, err)
	}
	if err := s.commitIndex(); err != nil {
		return fmt.Errorf("open store %s: %w", s.dir, err)
	}
	return nil
}
