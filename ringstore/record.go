package ringstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// On-disk record layout (all integers little-endian):
//
//	offset  size  field
//	0       4     magic "nvrR"
//	4       1     version (1)
//	5       1     kind (RecordKind)
//	6       2     flags (recKey, recTracks, recGap)
//	8       4     length: the whole record, header to CRC, a multiple of 8
//	12      8     generation
//	20      8     time0: unix nanoseconds (first frame, or the event time)
//	28      1+n   stream name (length byte, then bytes; empty for open/pad/void)
//	...           body (kind specific), zero padding to the length
//	len-4   4     CRC32C (Castagnoli) of bytes [0, len-4)
//
// Frames body:
//
//	[if recGap: cause u8, varint gapStart-time0]
//	uvarint n; n x {track u8, varint time-time0, uvarint dtsOffset ns, key u8, uvarint size}
//	[if recTracks: uvarint t; t x {id u8, codec u8, uvarint clockRate, channels u8,
//	                                uvarint c; c x {uvarint len, bytes}}]
//	payloads, concatenated in frame order
//
// Void body: slot u32, gen u64, offset u64: records of that slot written under
// that generation at or after that offset are void (their batch was re-written
// elsewhere after a write failure).
const (
	recMagic      = "nvrR"
	recVersion    = 1
	recHeaderSize = 28
	recCRCSize    = 4
	// recMinSize is the smallest record: header, empty name, CRC, aligned.
	recMinSize = 40
	// recAlign is the alignment of every record; batchAlign of every batch.
	recAlign   = 8
	batchAlign = 4096
	// recMaxSize bounds one record's length (a sanity limit for decoders).
	recMaxSize = 1 << 30
)

// RecordKind is the type of a log record. The numbers are part of the format.
type RecordKind uint8

// Record kinds.
const (
	// KindFrames holds frames of one stream.
	KindFrames RecordKind = 1
	// KindOpen is written each time the store opens: a store restart.
	KindOpen RecordKind = 2
	// KindPad fills the tail of a batch up to the next 4 KiB boundary.
	KindPad RecordKind = 4
	// KindVoid cancels the unacknowledged tail of a slot whose write failed.
	KindVoid RecordKind = 5
)

// String names the kind.
func (k RecordKind) String() string {
	switch k {
	case KindFrames:
		return "frames"
	case KindOpen:
		return "open"
	case KindPad:
		return "pad"
	case KindVoid:
		return "void"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record flags.
const (
	recKey    = 1 << 0 // the first frame is a keyframe: reads may start here
	recTracks = 1 << 1 // the record carries the stream's track table
	recGap    = 1 << 2 // footage is missing right before this record
	// recEvicted: the ring had evicted footage when this record was
	// written (so Rebuild knows, from data alone, that gaps before the
	// oldest footage are evictions).
	recEvicted = 1 << 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord marks bytes that are not a valid record (torn, stale, zeros,
// corrupt); scanners stop there, readers report GapCorrupt.
var errBadRecord = errors.New("not a valid record")

// record is one decoded log record. Frame data and track configs alias the
// buffer it was decoded from.
type record struct {
	kind   RecordKind
	flags  uint16
	gen    uint64
	time0  int64
	stream string
	sid    uint32 // the stream's index id (not encoded)
	// sizes and pieces, when sizes is set, replace the frames' Data
	// (records built from a stream's pending chunks): sizes[i] is frame
	// i's size, and the frames' data concatenated is pieces concatenated.
	sizes    []int
	pieces   [][]byte
	gapCause GapCause
	gapStart int64
	frames   []Frame
	tracks   []Track
	void     voidBody
	length   int
}

type voidBody struct {
	slot   uint32
	gen    uint64
	offset int64
}

func align(n, a int64) int64 { return (n + a - 1) / a * a }

// lastTime returns the latest frame time in the record (time0 without frames).
func (r *record) lastTime() int64 {
	last := r.time0
	for i := range r.frames {
		if t := r.frames[i].Time.UnixNano(); t > last {
			last = t
		}
	}
	return last
}

// encodedSize returns the length encodeRecord will produce.
func (r *record) encodedSize() int {
	n := recHeaderSize + 1 + len(r.stream)
	var tmp [binary.MaxVarintLen64]byte
	switch r.kind {
	case KindFrames:
		if r.flags&recGap != 0 {
			n += 1 + binary.PutVarint(tmp[:], r.gapStart-r.time0)
		}
		n += binary.PutUvarint(tmp[:], uint64(len(r.frames)))
		for i := range r.frames {
			f := &r.frames[i]
			size := r.frameSize(i)
			n += 1 + binary.PutVarint(tmp[:], f.Time.UnixNano()-r.time0) +
				binary.PutUvarint(tmp[:], uint64(f.DTSOffset)) + 1 +
				binary.PutUvarint(tmp[:], uint64(size)) + size
		}
		if r.flags&recTracks != 0 {
			n += tracksSize(r.tracks)
		}
	case KindVoid:
		n += 20
	case KindPad:
		if r.length > n+recCRCSize {
			return r.length
		}
	}
	return int(align(int64(n+recCRCSize), recAlign))
}

func tracksSize(ts []Track) int {
	var tmp [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(tmp[:], uint64(len(ts)))
	for _, t := range ts {
		n += 2 + binary.PutUvarint(tmp[:], uint64(t.ClockRate)) + 1 + binary.PutUvarint(tmp[:], uint64(len(t.Config)))
		for _, c := range t.Config {
			n += binary.PutUvarint(tmp[:], uint64(len(c))) + len(c)
		}
	}
	return n
}

// frameSize returns the size of frame i's data.
func (r *record) frameSize(i int) int {
	if r.sizes != nil {
		return r.sizes[i]
	}
	return len(r.frames[i].Data)
}

// encodeRecord appends r to dst, with r.gen, and returns the extended slice.
func encodeRecord(dst []byte, r *record) []byte {
	size := r.encodedSize()
	start := len(dst)
	dst = appendRecordHead(dst, r, size)
	if r.kind == KindFrames {
		if r.sizes != nil {
			for _, p := range r.pieces {
				dst = append(dst, p...)
			}
		} else {
			for i := range r.frames {
				dst = append(dst, r.frames[i].Data...)
			}
		}
	}
	dst = appendZeros(dst, size-recCRCSize-(len(dst)-start))
	crc := crc32.Checksum(dst[start:], castagnoli)
	return binary.LittleEndian.AppendUint32(dst, crc)
}

// appendRecordHead appends the bytes of r before its payloads (the whole
// body for other kinds than frames) to dst; size is r.encodedSize().
func appendRecordHead(dst []byte, r *record, size int) []byte {
	dst = append(dst, recMagic...)
	dst = append(dst, recVersion, byte(r.kind))
	dst = binary.LittleEndian.AppendUint16(dst, r.flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(size))
	dst = binary.LittleEndian.AppendUint64(dst, r.gen)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.time0))
	dst = append(dst, byte(len(r.stream)))
	dst = append(dst, r.stream...)
	switch r.kind {
	case KindFrames:
		if r.flags&recGap != 0 {
			dst = append(dst, byte(r.gapCause))
			dst = binary.AppendVarint(dst, r.gapStart-r.time0)
		}
		dst = binary.AppendUvarint(dst, uint64(len(r.frames)))
		for i := range r.frames {
			f := &r.frames[i]
			dst = append(dst, f.Track)
			dst = binary.AppendVarint(dst, f.Time.UnixNano()-r.time0)
			dst = binary.AppendUvarint(dst, uint64(f.DTSOffset))
			k := byte(0)
			if f.Key {
				k = 1
			}
			dst = append(dst, k)
			dst = binary.AppendUvarint(dst, uint64(r.frameSize(i)))
		}
		if r.flags&recTracks != 0 {
			dst = appendTracks(dst, r.tracks)
		}
	case KindVoid:
		dst = binary.LittleEndian.AppendUint32(dst, r.void.slot)
		dst = binary.LittleEndian.AppendUint64(dst, r.void.gen)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(r.void.offset))
	}
	return dst
}

var zeros [4096]byte

func appendZeros(dst []byte, n int) []byte {
	for n > 0 {
		k := min(n, len(zeros))
		dst = append(dst, zeros[:k]...)
		n -= k
	}
	return dst
}

func appendTracks(dst []byte, ts []Track) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ts)))
	for _, t := range ts {
		dst = append(dst, t.ID, byte(t.Codec))
		dst = binary.AppendUvarint(dst, uint64(t.ClockRate))
		dst = append(dst, t.Channels)
		dst = binary.AppendUvarint(dst, uint64(len(t.Config)))
		for _, c := range t.Config {
			dst = binary.AppendUvarint(dst, uint64(len(c)))
			dst = append(dst, c...)
		}
	}
	return dst
}

// recordHeader is the fixed part of a record, readable before the body.
type recordHeader struct {
	kind   RecordKind
	flags  uint16
	length int
	gen    uint64
	time0  int64
}

// parseHeader reads the fixed header at the start of b, without the CRC check.
func parseHeader(b []byte) (recordHeader, error) {
	if len(b) < recHeaderSize {
		return recordHeader{}, fmt.Errorf("%w: %d bytes, header needs %d", errBadRecord, len(b), recHeaderSize)
	}
	if string(b[:4]) != recMagic {
		return recordHeader{}, fmt.Errorf("%w: bad magic %x", errBadRecord, b[:4])
	}
	if b[4] != recVersion {
		return recordHeader{}, fmt.Errorf("%w: version %d", errBadRecord, b[4])
	}
	h := recordHeader{
		kind:   RecordKind(b[5]),
		flags:  binary.LittleEndian.Uint16(b[6:]),
		length: int(binary.LittleEndian.Uint32(b[8:])),
		gen:    binary.LittleEndian.Uint64(b[12:]),
		time0:  int64(binary.LittleEndian.Uint64(b[20:])),
	}
	if h.length < recMinSize || h.length%recAlign != 0 || h.length > recMaxSize {
		return recordHeader{}, fmt.Errorf("%w: length %d", errBadRecord, h.length)
	}
	switch h.kind {
	case KindFrames, KindOpen, KindPad, KindVoid:
	default:
		return recordHeader{}, fmt.Errorf("%w: kind %d", errBadRecord, h.kind)
	}
	return h, nil
}

// decodeRecord decodes the record at the start of b. It checks the CRC, so a
// returned record is always one the store wrote. Data slices alias b.
func decodeRecord(b []byte) (*record, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.length > len(b) {
		return nil, fmt.Errorf("%w: length %d beyond the %d bytes available", errBadRecord, h.length, len(b))
	}
	b = b[:h.length]
	want := binary.LittleEndian.Uint32(b[h.length-recCRCSize:])
	if got := crc32.Checksum(b[:h.length-recCRCSize], castagnoli); got != want {
		return nil, fmt.Errorf("%w: crc %08x, want %08x", errBadRecord, got, want)
	}
	r := &record{kind: h.kind, flags: h.flags, gen: h.gen, time0: h.time0, length: h.length}
	d := decoder{b: b[:h.length-recCRCSize], off: recHeaderSize}
	n := int(d.byte())
	r.stream = string(d.bytes(n))
	switch r.kind {
	case KindFrames:
		r.decodeFrames(&d)
	case KindVoid:
		r.void.slot = d.u32()
		r.void.gen = d.u64()
		r.void.offset = int64(d.u64())
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: body: %v", errBadRecord, d.err)
	}
	return r, nil
}

func (r *record) decodeFrames(d *decoder) {
	if r.flags&recGap != 0 {
		r.gapCause = GapCause(d.byte())
		r.gapStart = r.time0 + d.varint()
	}
	n := d.count(5)
	r.frames = make([]Frame, n)
	sizes := make([]int, n)
	for i := 0; i < n && d.err == nil; i++ {
		f := &r.frames[i]
		f.Track = d.byte()
		f.Time = time.Unix(0, r.time0+d.varint())
		f.DTSOffset = time.Duration(d.uvarint())
		f.Key = d.byte() != 0
		sizes[i] = d.count(0)
	}
	if r.flags&recTracks != 0 {
		r.tracks = decodeTracks(d)
	}
	for i := 0; i < n && d.err == nil; i++ {
		r.frames[i].Data = d.bytes(sizes[i])
	}
}

func decodeTracks(d *decoder) []Track {
	nt := d.count(5)
	ts := make([]Track, 0, nt)
	for i := 0; i < nt && d.err == nil; i++ {
		t := Track{ID: d.byte(), Codec: Codec(d.byte())}
		t.ClockRate = uint32(d.uvarint())
		t.Channels = d.byte()
		nc := d.count(1)
		for j := 0; j < nc && d.err == nil; j++ {
			t.Config = append(t.Config, d.bytes(d.count(0)))
		}
		ts = append(ts, t)
	}
	return ts
}

// decoder reads a body; the first error sticks and later reads return zeros.
type decoder struct {
	b   []byte
	off int
	err error
}

var errShort = errors.New("body truncated")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail(errShort)
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b)-d.off {
		d.fail(errShort)
		return nil
	}
	d.off += n
	return d.b[d.off-n : d.off : d.off]
}

func (d *decoder) u32() uint32 {
	b := d.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (d *decoder) u64() uint64 {
	b := d.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(errors.New("bad uvarint"))
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(errors.New("bad varint"))
		return 0
	}
	d.off += n
	return v
}

// count reads a uvarint count of items each at least minSize bytes, bounded
// by the bytes left, so hostile counts cannot make huge allocations.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	left := uint64(len(d.b) - d.off)
	if minSize > 0 && v > left/uint64(minSize) || v > left {
		d.fail(fmt.Errorf("count %d exceeds the %d bytes left", v, left))
		return 0
	}
	return int(v)
}

// padRecord returns a pad record exactly n bytes long (n >= recMinSize, n%8 == 0).
func padRecord(gen uint64, n int) *record {
	return &record{kind: KindPad, gen: gen, length: n}
}
