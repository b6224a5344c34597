package ringstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// CheckReport is the result of Check (fsck).
type CheckReport struct {
	// Slots is the number of slots holding data that were checked.
	Slots int
	// Records and Bytes count the records read and verified.
	Records int
	Bytes   int64
	// Problems lists every inconsistency found, in slot and offset order.
	Problems []Problem
}

// Problem is one inconsistency found by Check.
type Problem struct {
	Slot   int
	Offset int64
	Stream string
	What   string
}

func (p Problem) String() string {
	s := fmt.Sprintf("slot %d offset %d", p.Slot, p.Offset)
	if p.Stream != "" {
		s += " stream " + p.Stream
	}
	return s + ": " + p.What
}

// Healthy reports whether Check found nothing wrong.
func (r CheckReport) Healthy() bool { return len(r.Problems) == 0 }

// slotEntries returns the index entries pointing into slot i (whose footage
// spans h.first..h.last), by offset.
func slotEntries(tx *bolt.Tx, i int, h slotHdr) ([]indexEntry, error) {
	var out []indexEntry
	if h.end == 0 {
		return nil, nil
	}
	c := tx.Bucket(bktRecords).Cursor()
	stop := timeBucket(h.last)
	for k, v := c.Seek(binary.BigEndian.AppendUint32(nil, timeBucket(h.first))); k != nil; k, v = c.Next() {
		if binary.BigEndian.Uint32(k) > stop {
			break
		}
		if len(v) == recValSize && binary.BigEndian.Uint32(v) == uint32(i) {
			e, err := parseEntry(k, v)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].offset < out[b].offset })
	return out, nil
}

// Check verifies every indexed record (CRC, generation, position) and that
// every valid record in the slots is indexed. progress, when set, is called
// with bytes checked so far. The report lists problems; the error is set
// only when the check itself could not run.
func (s *Store) Check(ctx context.Context, progress func(done, total int64)) (CheckReport, error) {
	var rep CheckReport
	s.slotMu.RLock()
	slots := append([]slotHdr(nil), s.slots...)
	s.slotMu.RUnlock()
	var total, done int64
	for _, h := range slots {
		total += h.end
	}
	names := map[uint32]string{}
	s.metaMu.RLock()
	for id, m := range s.metas {
		names[id] = m.name
	}
	s.metaMu.RUnlock()
	for i, h := range slots {
		if h.state == slotSuspect {
			rep.Problems = append(rep.Problems, Problem{Slot: i, What: "slot is suspect: a write or sync failed on it"})
		}
		if h.end == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("check: %w", err)
		}
		rep.Slots++
		if err := s.checkSlot(i, h, names, &rep); err != nil {
			return rep, err
		}
		done += h.end
		if progress != nil {
			progress(done, total)
		}
	}
	if n := len(rep.Problems); n > 0 {
		s.alarm("corrupt", -1, fmt.Errorf("check found %d problems", n))
	}
	return rep, nil
}

func (s *Store) checkSlot(i int, h slotHdr, names map[uint32]string, rep *CheckReport) error {
	var es []indexEntry
	if err := s.db.View(func(tx *bolt.Tx) (err error) {
		es, err = slotEntries(tx, i, h)
		return err
	}); err != nil {
		return fmt.Errorf("check slot %d: index: %w", i, err)
	}
	indexed := map[int64]bool{}
	for _, e := range es {
		indexed[e.offset] = true
		_, _, err := s.readEntry(e)
		switch {
		case errors.Is(err, ErrEvicted):
			continue // recycled while checking
		case err != nil:
			rep.Problems = append(rep.Problems, Problem{Slot: i, Offset: e.offset, Stream: names[e.stream], What: err.Error()})
			continue
		}
		rep.Records++
		rep.Bytes += int64(e.length)
	}
	f, release, err := s.acquire(i)
	if err != nil {
		return fmt.Errorf("check slot %d: %w", i, err)
	}
	defer release()
	accept := func(rh recordHeader) bool { return rh.gen >= h.baseGen }
	corrupt := func(off, next int64) {
		if !indexed[off] {
			rep.Problems = append(rep.Problems, Problem{Slot: i, Offset: off, What: fmt.Sprintf("%d unreadable bytes", next-off)})
		}
	}
	end, err := scanSlot(f, h.end, 0, scanOpts{accept: accept, resync: true, corrupt: corrupt}, func(off int64, r *record, _ []byte) bool {
		if r.kind == KindFrames && !indexed[off] {
			rep.Problems = append(rep.Problems, Problem{Slot: i, Offset: off, Stream: r.stream, What: "valid record missing from the index"})
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("check slot %d: %w", i, err)
	}
	if end < h.end && !indexed[end] {
		rep.Problems = append(rep.Problems, Problem{Slot: i, Offset: end, What: fmt.Sprintf("unreadable bytes up to the indexed end %d", h.end)})
	}
	return nil
}
