package ringstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// rebuiltSlot is what a scan of one slot file found.
type rebuiltSlot struct {
	hdr     slotHdr
	entries []indexEntry // stream ids are positions in rebuilt.names
}

// rebuilt is an index reconstructed from the slot files alone.
type rebuilt struct {
	slots      []rebuiltSlot
	names      []string // stream id -> name, in order of first appearance in the log
	tracks     map[uint32][]Track
	gen        uint64
	head       int
	checkpoint int64
	evicted    bool
}

// volumeScan accumulates what scanVolume finds in the slots.
type volumeScan struct {
	rb       *rebuilt
	voids    []voidBody
	tabs     []trackTable
	firstAt  map[string]Position // each stream's first record in the log
	tmpIDs   map[string]uint32   // provisional ids, by first scan
	tmpNames []string
}

// trackTable is a track table found in the log.
type trackTable struct {
	at     Position
	stream string
	tracks []Track
}

// scanVolume reads every slot of a volume and reconstructs its index. now and
// maxAge apply the MaxAge rule as Open does.
func scanVolume(ctx context.Context, fs vfs.FS, dir string, vol VolumeInfo, knobs testKnobs, now time.Time, maxAge time.Duration) (*rebuilt, error) {
	vs := &volumeScan{
		rb:      &rebuilt{slots: make([]rebuiltSlot, vol.Slots), tracks: map[uint32][]Track{}, head: -1},
		firstAt: map[string]Position{},
		tmpIDs:  map[string]uint32{},
	}
	for i := 0; i < vol.Slots; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := vs.scanSlotFile(fs, dir, vol, i, knobs); err != nil {
			return nil, err
		}
	}
	vs.applyVoids()
	vs.rb.settle(vol, now, maxAge)
	vs.assignIDs()
	return vs.rb, nil
}

// scanSlotFile reads slot i's valid records: from offset 0, generations
// never decreasing, skipping corrupt stretches.
func (vs *volumeScan) scanSlotFile(fs vfs.FS, dir string, vol VolumeInfo, i int, knobs testKnobs) error {
	f, err := fs.Open(slotPath(dir, i))
	if err != nil {
		return fmt.Errorf("open slot %d: %w", i, err)
	}
	defer f.Close()
	rb := vs.rb
	rs := &rb.slots[i]
	var prev uint64
	first := true
	accept := func(h recordHeader) bool {
		if knobs.skipGenCheck {
			return true
		}
		if first {
			return h.gen > 0
		}
		return h.gen >= prev
	}
	end, err := scanSlot(f, vol.SlotSize, 0, scanOpts{accept: accept, resync: true}, func(off int64, r *record, _ []byte) bool {
		if first {
			rs.hdr.baseGen = r.gen
			first = false
		}
		prev = r.gen
		rb.gen = max(rb.gen, r.gen)
		pos := Position{Gen: r.gen, Offset: off}
		if r.flags&recEvicted != 0 {
			rb.evicted = true
		}
		switch r.kind {
		case KindFrames:
			id, ok := vs.tmpIDs[r.stream]
			if !ok {
				id = uint32(len(vs.tmpNames))
				vs.tmpIDs[r.stream] = id
				vs.tmpNames = append(vs.tmpNames, r.stream)
			}
			if at, ok := vs.firstAt[r.stream]; !ok || pos.Less(at) {
				vs.firstAt[r.stream] = pos
			}
			r.sid = id
			rs.entries = append(rs.entries, entryOf(r, i, off, int64(r.length)))
			if r.flags&recTracks != 0 {
				vs.tabs = append(vs.tabs, trackTable{pos, r.stream, cloneTracks(r.tracks)})
			}
		case KindVoid:
			vs.voids = append(vs.voids, r.void)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("scan slot %d: %w", i, err)
	}
	rs.hdr.end = end
	return nil
}

// applyVoids drops the records that void records cancel (the tail of a
// slot whose write failed) and marks those slots suspect.
func (vs *volumeScan) applyVoids() {
	for _, v := range vs.voids {
		if int(v.slot) >= len(vs.rb.slots) {
			continue
		}
		rs := &vs.rb.slots[v.slot]
		if rs.hdr.end == 0 || rs.hdr.baseGen > v.gen {
			continue // the voided slot was reused since
		}
		keep := rs.entries[:0]
		for _, e := range rs.entries {
			if e.offset < v.offset {
				keep = append(keep, e)
			}
		}
		rs.entries = keep
		rs.hdr.end = min(rs.hdr.end, v.offset)
		rs.hdr.state = slotSuspect
	}
}

// settle picks the head (the slot started last), the checkpoint, the slot
// states and summaries, and applies MaxAge.
func (rb *rebuilt) settle(vol VolumeInfo, now time.Time, maxAge time.Duration) {
	var best uint64
	for i := range rb.slots {
		h := &rb.slots[i].hdr
		if h.end > 0 {
			if h.baseGen > best {
				best, rb.head = h.baseGen, i
			}
		}
	}
	if rb.head >= 0 {
		rb.checkpoint = min(align(rb.slots[rb.head].hdr.end, batchAlign), vol.SlotSize)
	} else {
		rb.head = 0
	}
	cutoff := now.Add(-maxAge).UnixNano()
	for i := range rb.slots {
		rs := &rb.slots[i]
		if rs.hdr.end == 0 {
			rs.hdr = slotHdr{state: rs.hdr.state}
			rs.entries = nil
			continue
		}
		for _, e := range rs.entries {
			if rs.hdr.first == 0 || e.time0 < rs.hdr.first {
				rs.hdr.first = e.time0
			}
			rs.hdr.last = max(rs.hdr.last, e.last)
		}
		if i == rb.head {
			rs.hdr.state = slotHead
		} else if rs.hdr.state != slotSuspect {
			rs.hdr.state = slotSealed
		}
		if maxAge > 0 && i != rb.head && rs.hdr.last < cutoff {
			rb.evicted = true
			rs.hdr = slotHdr{baseGen: rs.hdr.baseGen, state: rs.hdr.state}
			if rs.hdr.state != slotSuspect {
				rs.hdr.state = slotFree
			}
			rs.entries = nil
		}
	}
}

// assignIDs numbers the streams with retained records in log order of first
// appearance, and sets each one's current (last) track table.
func (vs *volumeScan) assignIDs() {
	rb := vs.rb
	retained := map[string]bool{}
	for _, rs := range rb.slots {
		for _, e := range rs.entries {
			retained[vs.tmpNames[e.stream]] = true
		}
	}
	var names []string
	for name := range retained {
		names = append(names, name)
	}
	sort.Slice(names, func(a, b int) bool { return vs.firstAt[names[a]].Less(vs.firstAt[names[b]]) })
	remap := map[uint32]uint32{}
	for _, name := range names {
		remap[vs.tmpIDs[name]] = uint32(len(rb.names))
		rb.names = append(rb.names, name)
	}
	for i := range rb.slots {
		for j := range rb.slots[i].entries {
			e := &rb.slots[i].entries[j]
			e.stream = remap[e.stream]
		}
	}
	sort.SliceStable(vs.tabs, func(a, b int) bool { return vs.tabs[a].at.Less(vs.tabs[b].at) })
	for _, t := range vs.tabs {
		if id, ok := remap[vs.tmpIDs[t.stream]]; ok {
			rb.tracks[id] = t.tracks
		}
	}
}

// writeIndex writes rb as a complete index for vol at path (replacing it).
func (rb *rebuilt) writeIndex(path string, vol VolumeInfo) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: true})
	if err != nil {
		return fmt.Errorf("create index %s: %w", path, err)
	}
	defer db.Close()
	metas := map[uint32]*streamMeta{}
	for id, name := range rb.names {
		metas[uint32(id)] = &streamMeta{id: uint32(id), name: name, tracks: rb.tracks[uint32(id)]}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initBuckets(tx); err != nil {
			return err
		}
		if err := putMetaIdentity(tx.Bucket(bktMeta), vol); err != nil {
			return err
		}
		if rb.evicted {
			if err := tx.Bucket(bktMeta).Put([]byte("evicted"), []byte{1}); err != nil {
				return err
			}
		}
		if err := putMeta(tx, rb.gen, rb.head, rb.checkpoint); err != nil {
			return err
		}
		for i, rs := range rb.slots {
			ss := map[uint32]*slotStream{}
			for _, e := range rs.entries {
				x := ss[e.stream]
				if x == nil {
					x = &slotStream{first: e.time0}
					ss[e.stream] = x
				}
				x.first = min(x.first, e.time0)
				x.last = max(x.last, e.last)
				x.bytes += int64(e.length)
				m := metas[e.stream]
				if m.first == 0 || e.time0 < m.first {
					m.first = e.time0
				}
				m.last = max(m.last, e.last)
				m.bytes += int64(e.length)
			}
			if len(ss) == 0 {
				ss = nil
			}
			if rs.hdr != (slotHdr{}) || ss != nil {
				if err := putSlot(tx, i, rs.hdr, ss); err != nil {
					return err
				}
			}
		}
		for _, m := range metas {
			if err := putStream(tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write index %s: %w", path, err)
	}
	const batch = 50000
	for i := range rb.slots {
		es := rb.slots[i].entries
		for len(es) > 0 {
			n := min(batch, len(es))
			if err := db.Update(func(tx *bolt.Tx) error { return putEntries(tx, es[:n]) }); err != nil {
				return fmt.Errorf("write index %s: %w", path, err)
			}
			es = es[n:]
		}
	}
	if err := db.Sync(); err != nil {
		return fmt.Errorf("sync index %s: %w", path, err)
	}
	return db.Close()
}

// Rebuild makes a new index for the volume in dir from its slot files alone,
// replacing the index at opts.IndexPath (written beside it, then renamed).
// The store must not be open.
func Rebuild(ctx context.Context, dir string, opts Options) error {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	vol, err := readVolume(fs, dir)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", dir, err)
	}
	rb, err := scanVolume(ctx, fs, dir, vol, opts.knobs, now(), opts.MaxAge)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", dir, err)
	}
	ip := indexPathOr(dir, opts.IndexPath)
	if err := indexNotInUse(ip); err != nil {
		return fmt.Errorf("rebuild %s: %w", dir, err)
	}
	tmp := ip + ".rebuild"
	if ok, _ := vfs.Default.Exists(tmp); ok {
		if err := vfs.Default.Remove(tmp); err != nil {
			return fmt.Errorf("rebuild %s: remove stale %s: %w", dir, tmp, err)
		}
	}
	if err := rb.writeIndex(tmp, vol); err != nil {
		return fmt.Errorf("rebuild %s: %w", dir, err)
	}
	if err := vfs.Default.Rename(tmp, ip); err != nil {
		return fmt.Errorf("rebuild %s: %w", dir, err)
	}
	if err := vfs.Default.SyncDir(filepath.Dir(ip)); err != nil {
		return fmt.Errorf("rebuild %s: %w", dir, err)
	}
	return nil
}

// dumpIndex renders an index's logical content (stream names instead of
// ids, free slots without history) for comparing two indexes.
func dumpIndex(tx *bolt.Tx, slots int) (string, error) {
	var b strings.Builder
	m, err := loadMeta(tx)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "meta volume=%s gen=%d head=%d checkpoint=%d\n", m.volumeID, m.gen, m.head, m.checkpoint)
	metas, err := loadStreams(tx)
	if err != nil {
		return "", err
	}
	hs, err := loadSlots(tx, slots)
	if err != nil {
		return "", err
	}
	for i, h := range hs {
		if h.end == 0 && h.state != slotHead {
			if h.state == slotSuspect {
				fmt.Fprintf(&b, "slot %d suspect, empty\n", i)
			}
			continue
		}
		fmt.Fprintf(&b, "slot %d %s base=%d first=%d last=%d end=%d\n", i, h.state, h.baseGen, h.first, h.last, h.end)
		ss := loadSlotStreams(tx, i)
		var lines []string
		for id, x := range ss {
			lines = append(lines, fmt.Sprintf("  %s first=%d last=%d bytes=%d\n", metas[id].name, x.first, x.last, x.bytes))
		}
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, ""))
	}
	var lines []string
	for _, sm := range metas {
		if sm.bytes > 0 {
			lines = append(lines, fmt.Sprintf("stream %s first=%d last=%d bytes=%d tracks=%x\n", sm.name, sm.first, sm.last, sm.bytes, appendTracks(nil, sm.tracks)))
		}
	}
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, ""))
	// Record lines sorted by name: stream ids may differ between indexes.
	lines = lines[:0]
	err = tx.Bucket(bktRecords).ForEach(func(k, v []byte) error {
		e, err := parseEntry(k, v)
		if err != nil {
			return err
		}
		name := "?"
		if sm := metas[e.stream]; sm != nil {
			name = sm.name
		}
		lines = append(lines, fmt.Sprintf("rec %s t0=%d gen=%d off=%d slot=%d len=%d last=%d n=%d flags=%d cause=%d gs=%d\n",
			name, e.time0, e.gen, e.offset, e.slot, e.length, e.last, e.frames, e.flags, e.cause, e.gapStart))
		return nil
	})
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, ""))
	return b.String(), err
}

// checkIndexMatchesRebuild compares the live index with one rebuilt from the
// slot files; it returns an error describing the first differences.
func (s *Store) checkIndexMatchesRebuild() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var live string
	if err := s.db.View(func(tx *bolt.Tx) (err error) {
		live, err = dumpIndex(tx, s.vol.Slots)
		return err
	}); err != nil {
		return fmt.Errorf("dump live index: %w", err)
	}
	rb, err := scanVolume(context.Background(), s.fs, s.dir, s.vol, s.opts.knobs, s.now(), s.opts.MaxAge)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ringstore-rebuild")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, "index.db")
	if err := rb.writeIndex(p, s.vol); err != nil {
		return err
	}
	db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	var fresh string
	if err := db.View(func(tx *bolt.Tx) (err error) {
		fresh, err = dumpIndex(tx, s.vol.Slots)
		return err
	}); err != nil {
		return err
	}
	if live == fresh {
		return nil
	}
	return fmt.Errorf("index differs from its rebuild:\n%s", lineDiff(live, fresh, 12))
}

// lineDiff lists up to max lines only in a ("-") or only in b ("+").
func lineDiff(a, b string, max int) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	inB := map[string]bool{}
	for _, l := range bs {
		inB[l] = true
	}
	inA := map[string]bool{}
	for _, l := range as {
		inA[l] = true
	}
	var out bytes.Buffer
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			fmt.Fprintf(&out, "first difference at line %d:\n- live    %s\n+ rebuilt %s\n", i, as[i], bs[i])
			break
		}
	}
	if len(as) != len(bs) {
		fmt.Fprintf(&out, "live has %d lines, rebuilt %d\n", len(as), len(bs))
	}
	n := 0
	for _, l := range as {
		if !inB[l] && n < max {
			fmt.Fprintf(&out, "- live    %s\n", l)
			n++
		}
	}
	for _, l := range bs {
		if !inA[l] && n < 2*max {
			fmt.Fprintf(&out, "+ rebuilt %s\n", l)
			n++
		}
	}
	return out.String()
}

// indexNotInUse fails when a store holds the index at p open (bbolt's file
// lock), so Rebuild never replaces the index under a running store.
func indexNotInUse(p string) error {
	ok, err := vfs.Default.Exists(p)
	if err != nil || !ok {
		return err
	}
	db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("index %s is in use by an open store", p)
		}
		return nil // unreadable: it is being replaced anyway
	}
	return db.Close()
}
