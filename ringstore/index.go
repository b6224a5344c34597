package ringstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// Index schema (bbolt buckets; integers big-endian so keys sort):
//
//	meta         "volume_id", "format_version", "gen" (last generation handed out),
//	             "head" (head slot), "checkpoint" (end of the last indexed batch in the
//	             head slot), "evicted" (1 once footage was ever evicted), "pending"
//	             (set while Format has not finished)
//	names        stream name -> stream id (u32)
//	streams      stream id -> first, last, bytes, name, current tracks
//	slots        slot (u32) -> base gen, state, first, last, end (valid bytes)
//	slotstreams  slot (u32) -> per stream: id, first, last, bytes
//	records      [unix s >> 6 (4)][stream id (4)][time0 ns (8)][gen (8)][offset (8)]
//	             -> slot, length, last ns, frames, flags, gap cause, gap start ns
//
// Keys are time-major so one commit tick touches few pages, and a stream's
// range query does one seek per 64 s bucket.
var (
	bktMeta        = []byte("meta")
	bktNames       = []byte("names")
	bktStreams     = []byte("streams")
	bktSlots       = []byte("slots")
	bktSlotStreams = []byte("slotstreams")
	bktRecords     = []byte("records")
	allBuckets     = [][]byte{bktMeta, bktNames, bktStreams, bktSlots, bktSlotStreams, bktRecords}
)

const (
	recKeySize   = 32
	recValSize   = 30
	bucketShift  = 6 // 64 s buckets
	bucketPeriod = int64(1<<bucketShift) * int64(time.Second)
)

// slotState is a slot's role in the ring.
type slotState uint8

const (
	slotFree    slotState = 0 // holds nothing indexed
	slotHead    slotState = 1 // being appended to
	slotSealed  slotState = 2 // full, readable
	slotSuspect slotState = 3 // a write or sync failed: never written again
)

func (s slotState) String() string {
	switch s {
	case slotFree:
		return "free"
	case slotHead:
		return "head"
	case slotSealed:
		return "sealed"
	case slotSuspect:
		return "suspect"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// slotHdr is the per-slot summary, kept in memory for every slot.
type slotHdr struct {
	baseGen     uint64
	state       slotState
	first, last int64 // unix ns of the slot's footage; 0 when none
	end         int64 // bytes of valid, indexed records from offset 0
}

// slotStream is one stream's footage in one slot.
type slotStream struct {
	first, last, bytes int64
}

// streamMeta is one stream's summary.
type streamMeta struct {
	id          uint32
	name        string
	first, last int64
	bytes       int64
	tracks      []Track
}

// indexEntry is one record's index entry.
type indexEntry struct {
	stream   uint32
	time0    int64
	gen      uint64
	offset   int64
	slot     uint32
	length   uint32
	last     int64
	frames   uint32
	flags    uint8
	cause    GapCause
	gapStart int64
}

func timeBucket(ns int64) uint32 {
	if ns < 0 {
		return 0
	}
	return uint32(ns / bucketPeriod)
}

func (e *indexEntry) key() []byte {
	k := make([]byte, recKeySize)
	binary.BigEndian.PutUint32(k[0:], timeBucket(e.time0))
	binary.BigEndian.PutUint32(k[4:], e.stream)
	binary.BigEndian.PutUint64(k[8:], uint64(e.time0))
	binary.BigEndian.PutUint64(k[16:], e.gen)
	binary.BigEndian.PutUint64(k[24:], uint64(e.offset))
	return k
}

func (e *indexEntry) value() []byte {
	v := make([]byte, recValSize)
	binary.BigEndian.PutUint32(v[0:], e.slot)
	binary.BigEndian.PutUint32(v[4:], e.length)
	binary.BigEndian.PutUint64(v[8:], uint64(e.last))
	binary.BigEndian.PutUint32(v[16:], e.frames)
	v[20] = e.flags
	v[21] = byte(e.cause)
	binary.BigEndian.PutUint64(v[22:], uint64(e.gapStart))
	return v
}

func parseEntry(k, v []byte) (indexEntry, error) {
	if len(k) != recKeySize || len(v) != recValSize {
		return indexEntry{}, fmt.Errorf("index record entry of %d/%d bytes", len(k), len(v))
	}
	return indexEntry{
		stream:   binary.BigEndian.Uint32(k[4:]),
		time0:    int64(binary.BigEndian.Uint64(k[8:])),
		gen:      binary.BigEndian.Uint64(k[16:]),
		offset:   int64(binary.BigEndian.Uint64(k[24:])),
		slot:     binary.BigEndian.Uint32(v[0:]),
		length:   binary.BigEndian.Uint32(v[4:]),
		last:     int64(binary.BigEndian.Uint64(v[8:])),
		frames:   binary.BigEndian.Uint32(v[16:]),
		flags:    v[20],
		cause:    GapCause(v[21]),
		gapStart: int64(binary.BigEndian.Uint64(v[22:])),
	}, nil
}

func u32key(i uint32) []byte { return binary.BigEndian.AppendUint32(nil, i) }

func u64val(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, k string) uint64 {
	v := b.Get([]byte(k))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (h slotHdr) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, h.baseGen)
	b = append(b, byte(h.state))
	b = binary.BigEndian.AppendUint64(b, uint64(h.first))
	b = binary.BigEndian.AppendUint64(b, uint64(h.last))
	return binary.BigEndian.AppendUint64(b, uint64(h.end))
}

func decodeSlotHdr(b []byte) (slotHdr, error) {
	if len(b) != 33 {
		return slotHdr{}, fmt.Errorf("slot header of %d bytes", len(b))
	}
	return slotHdr{
		baseGen: binary.BigEndian.Uint64(b),
		state:   slotState(b[8]),
		first:   int64(binary.BigEndian.Uint64(b[9:])),
		last:    int64(binary.BigEndian.Uint64(b[17:])),
		end:     int64(binary.BigEndian.Uint64(b[25:])),
	}, nil
}

func encodeSlotStreams(m map[uint32]*slotStream) []byte {
	b := make([]byte, 0, len(m)*28)
	for id, s := range m {
		b = binary.BigEndian.AppendUint32(b, id)
		b = binary.BigEndian.AppendUint64(b, uint64(s.first))
		b = binary.BigEndian.AppendUint64(b, uint64(s.last))
		b = binary.BigEndian.AppendUint64(b, uint64(s.bytes))
	}
	return b
}

func decodeSlotStreams(b []byte) map[uint32]*slotStream {
	m := make(map[uint32]*slotStream, len(b)/28)
	for ; len(b) >= 28; b = b[28:] {
		m[binary.BigEndian.Uint32(b)] = &slotStream{
			first: int64(binary.BigEndian.Uint64(b[4:])),
			last:  int64(binary.BigEndian.Uint64(b[12:])),
			bytes: int64(binary.BigEndian.Uint64(b[20:])),
		}
	}
	return m
}

func (m *streamMeta) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(m.first))
	b = binary.BigEndian.AppendUint64(b, uint64(m.last))
	b = binary.BigEndian.AppendUint64(b, uint64(m.bytes))
	b = append(b, byte(len(m.name)))
	b = append(b, m.name...)
	return appendTracks(b, m.tracks)
}

func decodeStreamMeta(id uint32, b []byte) (*streamMeta, error) {
	if len(b) < 25 {
		return nil, fmt.Errorf("stream %d summary of %d bytes", id, len(b))
	}
	m := &streamMeta{id: id}
	m.first = int64(binary.BigEndian.Uint64(b))
	m.last = int64(binary.BigEndian.Uint64(b[8:]))
	m.bytes = int64(binary.BigEndian.Uint64(b[16:]))
	d := decoder{b: b, off: 24}
	m.name = string(d.bytes(int(d.byte())))
	m.tracks = cloneTracks(decodeTracks(&d))
	if d.err != nil {
		return nil, fmt.Errorf("stream %d summary: %w", id, d.err)
	}
	return m, nil
}

func cloneTracks(ts []Track) []Track {
	if ts == nil {
		return nil
	}
	out := make([]Track, len(ts))
	for i, t := range ts {
		out[i] = t
		out[i].Config = nil
		for _, c := range t.Config {
			out[i].Config = append(out[i].Config, append([]byte(nil), c...))
		}
	}
	return out
}

// openIndex opens an existing bbolt index. The index is a bbolt file, which
// bbolt opens through the operating system whatever the volume's vfs.FS, so
// index file operations use vfs.Default.
func openIndex(path string) (*bolt.DB, error) {
	ok, err := vfs.Default.Exists(path)
	if err != nil {
		return nil, fmt.Errorf("stat index %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("index %s missing (run `nvrd store rebuild` to rebuild it from the volume): %w", path, os.ErrNotExist)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return db, nil
}

// createIndex creates the index for volume v with every slot free. An index
// left by an interrupted Format (meta "pending") is replaced; any other
// existing file is refused.
func createIndex(path string, v VolumeInfo) error {
	ok, err := vfs.Default.Exists(path)
	if err != nil {
		return fmt.Errorf("stat index %s: %w", path, err)
	}
	if ok {
		pending, err := indexPending(path)
		if err != nil || !pending {
			return fmt.Errorf("index %s already exists (remove it to format a new volume)", path)
		}
		if err := vfs.Default.Remove(path); err != nil {
			return fmt.Errorf("remove unfinished index %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("create index %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initBuckets(tx); err != nil {
			return err
		}
		m := tx.Bucket(bktMeta)
		if err := putMetaIdentity(m, v); err != nil {
			return err
		}
		return m.Put([]byte("pending"), []byte{1})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("initialise index %s: %w", path, err)
	}
	return nil
}

func initBuckets(tx *bolt.Tx) error {
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	return nil
}

func putMetaIdentity(m *bolt.Bucket, v VolumeInfo) error {
	if err := m.Put([]byte("volume_id"), []byte(v.ID)); err != nil {
		return err
	}
	if err := m.Put([]byte("format_version"), u64val(uint64(v.FormatVersion))); err != nil {
		return err
	}
	if err := m.Put([]byte("gen"), u64val(0)); err != nil {
		return err
	}
	if err := m.Put([]byte("head"), u64val(0)); err != nil {
		return err
	}
	return m.Put([]byte("checkpoint"), u64val(0))
}

func indexPending(path string) (bool, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return false, err
	}
	defer db.Close()
	pending := false
	err = db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bktMeta)
		if m == nil {
			return errors.New("no meta bucket")
		}
		pending = len(m.Get([]byte("pending"))) > 0
		return nil
	})
	return pending, err
}

// indexMeta is the meta bucket's content.
type indexMeta struct {
	volumeID   string
	gen        uint64
	head       int
	checkpoint int64
	evicted    bool
	pending    bool
}

func loadMeta(tx *bolt.Tx) (indexMeta, error) {
	m := tx.Bucket(bktMeta)
	if m == nil {
		return indexMeta{}, errors.New("index has no meta bucket")
	}
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			return indexMeta{}, fmt.Errorf("index has no %s bucket", b)
		}
	}
	return indexMeta{
		volumeID:   string(m.Get([]byte("volume_id"))),
		gen:        getU64(m, "gen"),
		head:       int(getU64(m, "head")),
		checkpoint: int64(getU64(m, "checkpoint")),
		evicted:    len(m.Get([]byte("evicted"))) > 0,
		pending:    len(m.Get([]byte("pending"))) > 0,
	}, nil
}

func putMeta(tx *bolt.Tx, gen uint64, head int, checkpoint int64) error {
	m := tx.Bucket(bktMeta)
	if err := m.Put([]byte("gen"), u64val(gen)); err != nil {
		return err
	}
	if err := m.Put([]byte("head"), u64val(uint64(head))); err != nil {
		return err
	}
	return m.Put([]byte("checkpoint"), u64val(uint64(checkpoint)))
}

func putEntries(tx *bolt.Tx, es []indexEntry) error {
	b := tx.Bucket(bktRecords)
	for i := range es {
		if err := b.Put(es[i].key(), es[i].value()); err != nil {
			return fmt.Errorf("index record: %w", err)
		}
	}
	return nil
}

func putSlot(tx *bolt.Tx, i int, h slotHdr, streams map[uint32]*slotStream) error {
	if err := tx.Bucket(bktSlots).Put(u32key(uint32(i)), h.encode()); err != nil {
		return fmt.Errorf("index slot %d: %w", i, err)
	}
	if streams == nil {
		return tx.Bucket(bktSlotStreams).Delete(u32key(uint32(i)))
	}
	return tx.Bucket(bktSlotStreams).Put(u32key(uint32(i)), encodeSlotStreams(streams))
}

func putStream(tx *bolt.Tx, m *streamMeta) error {
	if err := tx.Bucket(bktNames).Put([]byte(m.name), u32key(m.id)); err != nil {
		return fmt.Errorf("index stream %s: %w", m.name, err)
	}
	return tx.Bucket(bktStreams).Put(u32key(m.id), m.encode())
}

func loadStreams(tx *bolt.Tx) (map[uint32]*streamMeta, error) {
	out := map[uint32]*streamMeta{}
	err := tx.Bucket(bktStreams).ForEach(func(k, v []byte) error {
		if len(k) != 4 {
			return fmt.Errorf("stream key of %d bytes", len(k))
		}
		m, err := decodeStreamMeta(binary.BigEndian.Uint32(k), v)
		if err != nil {
			return err
		}
		out[m.id] = m
		return nil
	})
	return out, err
}

func loadSlots(tx *bolt.Tx, n int) ([]slotHdr, error) {
	out := make([]slotHdr, n)
	b := tx.Bucket(bktSlots)
	for i := range out {
		v := b.Get(u32key(uint32(i)))
		if v == nil {
			continue
		}
		h, err := decodeSlotHdr(v)
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}

func loadSlotStreams(tx *bolt.Tx, i int) map[uint32]*slotStream {
	return decodeSlotStreams(tx.Bucket(bktSlotStreams).Get(u32key(uint32(i))))
}

// dropSlotEntries deletes every record entry that points into slot i, whose
// footage spans [first, last]; it returns how many it deleted.
func dropSlotEntries(tx *bolt.Tx, i int, h slotHdr) (int, error) {
	if h.first == 0 && h.last == 0 {
		return 0, nil
	}
	b := tx.Bucket(bktRecords)
	c := b.Cursor()
	var del [][]byte
	seek := binary.BigEndian.AppendUint32(nil, timeBucket(h.first))
	stop := timeBucket(h.last)
	for k, v := c.Seek(seek); k != nil; k, v = c.Next() {
		if binary.BigEndian.Uint32(k) > stop {
			break
		}
		if len(v) == recValSize && binary.BigEndian.Uint32(v) == uint32(i) {
			del = append(del, append([]byte(nil), k...))
		}
	}
	for _, k := range del {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("drop index entries of slot %d: %w", i, err)
		}
	}
	return len(del), nil
}

// streamRange calls fn for each of stream id's entries with time0 in
// [from, to), in time order, until fn returns false.
func streamRange(tx *bolt.Tx, id uint32, from, to int64, fn func(indexEntry) bool) error {
	c := tx.Bucket(bktRecords).Cursor()
	prefix := make([]byte, 8)
	binary.BigEndian.PutUint32(prefix[4:], id)
	lo := make([]byte, 16)
	binary.BigEndian.PutUint32(lo[4:], id)
	for bk := timeBucket(from); bk <= timeBucket(to); bk++ {
		binary.BigEndian.PutUint32(prefix, bk)
		copy(lo, prefix)
		binary.BigEndian.PutUint64(lo[8:], uint64(max(from, 0)))
		for k, v := c.Seek(lo); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e, err := parseEntry(k, v)
			if err != nil {
				return err
			}
			if e.time0 >= to {
				return nil
			}
			if !fn(e) {
				return nil
			}
		}
		if bk == ^uint32(0) {
			break
		}
	}
	return nil
}

// keyAtOrBefore finds stream id's last keyframe entry with time0 <= t,
// looking back at most maxBuckets 64 s buckets; ok is false if none.
func keyAtOrBefore(tx *bolt.Tx, id uint32, t int64, maxBuckets int) (indexEntry, bool, error) {
	c := tx.Bucket(bktRecords).Cursor()
	bk := int64(timeBucket(t))
	for n := 0; n < maxBuckets && bk >= 0; n, bk = n+1, bk-1 {
		prefix := binary.BigEndian.AppendUint32(nil, uint32(bk))
		prefix = binary.BigEndian.AppendUint32(prefix, id)
		hi := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(t)+1)
		var k, v []byte
		if k, _ = c.Seek(hi); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			e, err := parseEntry(k, v)
			if err != nil {
				return indexEntry{}, false, err
			}
			if e.time0 <= t && e.flags&recKey != 0 {
				return e, true, nil
			}
		}
	}
	return indexEntry{}, false, nil
}
