package recorder

// An allocation-free H.264/H.265 RTP depacketizer for the TCP fast path.
//
// videoAssembler produces the same access units, and fails on the same
// packets, as the gortsplib closures of recordable() (rtph264/rtph265
// decoders of gortsplib v4.16.2 plus auTimestamp and the H.265 end marker,
// after pion's rtp.Packet.Unmarshal). It mirrors their state machines field
// by field; only where the bytes live differs: every payload byte is copied
// once, from the caller's packet into the pooled buffer of its access unit,
// and NALUs are kept as offsets until the unit is handed out.
//
// Two cases copy bytes a second time: a buffer that has to grow (the bigger
// one then returns to the pool, so a stream soon stops growing them), and an
// H.264 fragmented NALU that started with the timestamp of the access unit
// being assembled but ended with another one (the decoder then splits the
// access unit there and the NALU moves to the next unit's buffer). A
// fragment that starts with a new timestamp (cameras that never set the
// marker bit) is assembled in the next unit's buffer from the start.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/nvrfw/nvr/ringstore"
)

const (
	// h265AUDSize is the size of the access unit delimiter the H.265
	// closure of recordable() appends to end an access unit (h265EndMarker).
	h265AUDSize = 3
	// frameBufSize is the capacity of a new pooled access unit buffer.
	frameBufSize = 64 << 10
	// frameBufMaxPooled is the largest buffer capacity the pool keeps.
	frameBufMaxPooled = 1 << 20
	// naluChunk is how many NALU slice headers are allocated at once for
	// the units handed out (see videoAssembler.nalus).
	naluChunk = 64
)

// framePool recycles access unit buffers. The zero value is ready to use;
// a nil *framePool allocates every buffer and drops returned ones. It is
// safe for concurrent use. The embedded sync.Pool holds *[]byte; use get
// and put rather than its methods.
type framePool struct {
	sync.Pool
	// boxes holds empty *[]byte so that put stores a buffer without
	// allocating a pointer for it.
	boxes sync.Pool
}

// get returns an empty buffer (len 0): a pooled one, or a new one of
// capacity 64 KiB.
func (p *framePool) get() []byte {
	if p != nil {
		if bp, ok := p.Get().(*[]byte); ok {
			b := *bp
			*bp = nil
			p.boxes.Put(bp)
			return b[:0]
		}
	}
	return make([]byte, 0, frameBufSize)
}

// put gives a buffer back for reuse. Buffers of capacity above 1 MiB are
// dropped (keyframe-sized ones up to 1 MiB are kept). The caller must no
// longer use b nor any slice of it.
func (p *framePool) put(b []byte) {
	if p == nil || cap(b) == 0 || cap(b) > frameBufMaxPooled {
		return
	}
	bp, _ := p.boxes.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = b[:0]
	p.Put(bp)
}

// span is one NALU as offsets [off, end) into a buffer.
type span struct{ off, end int }

// naluSource says where the NALUs of the packet being pushed are.
type naluSource uint8

const (
	srcPacket naluSource = iota // in the packet's payload
	srcBuf                      // at the tail of buf, from fragOff (a completed fragmented NALU)
	srcNext                     // in next (a completed fragmented NALU)
)

// decodeStatus is the outcome of one step, mirroring the decoders' errors.
type decodeStatus uint8

const (
	stDone        decodeStatus = iota // NALUs decoded / access unit handled
	stMore                            // ErrMorePacketsNeeded
	stNonStarting                     // ErrNonStartingPacketAndNoPrevious: ignored
	stFailed                          // any other error
)

// videoAssembler turns the RTP packets of one H.264 or H.265 track into
// access units. It is not safe for concurrent use: one goroutine pushes.
type videoAssembler struct {
	codec    ringstore.Codec
	pool     *framePool
	lastSSRC uint32

	// The decoder's fragment state (gortsplib's fragments*, firstPacketReceived).
	started     bool
	fragSize    int // bytes of the fragmented NALU so far; 0: none in progress
	fragNextSeq uint16
	fragInNext  bool // the fragment is in next, else at the tail of buf from fragOff
	fragOff     int
	annexB      bool // H.264: the stream wraps NALUs in Annex-B start codes

	// The access unit being assembled (gortsplib's frameBuffer*).
	buf       []byte // nil until needed
	frame     []span // its NALUs in buf; empty: no access unit pending
	frameSize int
	frameTS   uint32
	next      []byte // spare buffer a fragment with a new timestamp starts in

	au auTimestamp // as the closures keep it

	cur    []span     // NALUs of the packet being pushed
	chunk  [][]byte   // NALU slice headers to hand out (see nalus)
	maxN   int        // NALUs per access unit limit
	maxLen int        // access unit size limit
	errBad error      // for codecs the assembler does not handle
	copied int        // bytes copied into buffers so far (tests check it)
	pkt    rtpPayload // the packet being pushed
}

// rtpPayload is what the assembler uses of an RTP packet.
type rtpPayload struct {
	payload []byte
	marker  bool
	seq     uint16
	ts      uint32
	ssrc    uint32
}

// newVideoAssembler returns an assembler for codec (ringstore.CodecH264 or
// CodecH265; with any other, push fails on every packet). Buffers come from
// pool; a nil pool allocates them.
func newVideoAssembler(codec ringstore.Codec, pool *framePool) *videoAssembler {
	a := &videoAssembler{codec: codec, pool: pool}
	switch codec {
	case ringstore.CodecH264:
		a.maxN, a.maxLen = h264.MaxNALUsPerAccessUnit, h264.MaxAccessUnitSize
	case ringstore.CodecH265:
		a.maxN, a.maxLen = h265.MaxNALUsPerAccessUnit, h265.MaxAccessUnitSize
	default:
		a.errBad = fmt.Errorf("RTP video depacketizer: codec %s is not H.264 or H.265", codec)
	}
	return a
}

// ssrc returns the SSRC of the last packet pushed whose header could be
// parsed.
func (a *videoAssembler) ssrc() uint32 { return a.lastSSRC }

// push takes one RTP packet as received (header and payload, valid only
// during the call) and calls emit for every access unit it completes (zero,
// one, or two: an H.265 access unit that never got its marker bit ends when
// the timestamp changes, before the packet's own unit). The unit given to
// emit has ts and nalus set; its nalus are sub-slices of unit.buf, which now
// belongs to the receiver (unit.release gives it back to the pool). push returns an
// error for a packet that cannot be depacketized; the assembler is then in
// the state today's decoders are in after the same error and keeps working.
// With H.265, an error may follow the emission of the previous unit (the
// gortsplib closure returns both in that case too).
func (a *videoAssembler) push(pkt []byte, emit func(unit)) error {
	if a.errBad != nil {
		return a.errBad
	}
	if err := parseRTP(pkt, &a.pkt); err != nil {
		return err
	}
	a.lastSSRC = a.pkt.ssrc
	var st decodeStatus
	var err error
	if a.codec == ringstore.CodecH265 {
		st, err = a.pushH265(emit)
	} else {
		st, err = a.pushH264(emit)
	}
	a.cur = a.cur[:0]
	a.pkt.payload = nil
	switch st {
	case stMore:
		a.au.pending(a.pkt.ts)
	case stNonStarting:
		a.au.reset()
	case stFailed:
		a.au.reset()
		return err
	}
	return nil
}

// pushH264 mirrors rtph264.Decoder.Decode and the H.264 closure.
func (a *videoAssembler) pushH264(emit func(unit)) (decodeStatus, error) {
	src, st, err := a.h264NALUs()
	if st != stDone {
		return st, err
	}
	l, size := len(a.cur), a.curSize()
	if len(a.frame) > 0 && a.pkt.ts != a.frameTS {
		// Split by timestamp: the previous access unit is returned, the
		// packet's NALUs start the next one.
		if l > a.maxN || size > a.maxLen {
			a.dropAll()
			return stFailed, a.limitError(l, size)
		}
		prev, prevFrame := a.buf, a.frame
		var nb []byte
		if src == srcNext {
			nb, a.next = a.next, nil
		} else {
			nb = a.copyCur(a.pool.get(), a.source(src))
		}
		if src == srcBuf {
			prev = prev[:a.fragOff]
		}
		u := unit{ts: a.au.complete(a.pkt.ts), nalus: a.nalus(prev, prevFrame), buf: prev, pool: a.pool}
		// nalus() copied prevFrame out: its array takes the new spans.
		a.buf, a.frame, a.frameSize, a.frameTS = nb, append(prevFrame[:0], a.cur...), size, a.pkt.ts
		emit(u)
		return stDone, nil
	}
	if st, err := a.addToFrame(src, l, size); st != stDone {
		return st, err
	}
	if !a.pkt.marker {
		return stMore, nil
	}
	a.emitFrame(a.au.complete(a.pkt.ts), emit)
	return stDone, nil
}

// pushH265 mirrors rtph265.Decoder.Decode and the H.265 closure.
func (a *videoAssembler) pushH265(emit func(unit)) (decodeStatus, error) {
	if a.au.have && a.au.ts != a.pkt.ts {
		// The closure ends the previous access unit with a marked access
		// unit delimiter: a single NALU packet, which resets fragments.
		a.resetFrag()
		if len(a.frame)+1 > a.maxN || a.frameSize+h265AUDSize > a.maxLen {
			a.dropAll()
		} else if len(a.frame) > 0 {
			a.emitFrame(a.au.ts, emit)
		}
		a.au.reset()
	}
	src, st, err := a.h265NALUs()
	if st != stDone {
		return st, err
	}
	if st, err := a.addToFrame(src, len(a.cur), a.curSize()); st != stDone {
		return st, err
	}
	if !a.pkt.marker {
		return stMore, nil
	}
	a.au.reset()
	a.emitFrame(a.pkt.ts, emit)
	return stDone, nil
}

// addToFrame checks the limits and appends the packet's NALUs to the access
// unit (gortsplib's addToFrameBuffer).
func (a *videoAssembler) addToFrame(src naluSource, l, size int) (decodeStatus, error) {
	if len(a.frame)+l > a.maxN || a.frameSize+size > a.maxLen {
		n, s := len(a.frame)+l, a.frameSize+size
		a.dropAll()
		return stFailed, a.limitError(n, s)
	}
	switch src {
	case srcPacket:
		a.buf = a.copyCur(a.buf, a.pkt.payload)
	case srcNext:
		// The fragment started in next for a new timestamp but ended
		// with this one: move it to the access unit (a second copy).
		a.buf = a.copyCur(a.buf, a.next)
		a.next = a.next[:0]
	}
	a.frame = append(a.frame, a.cur...)
	a.frameSize += size
	a.frameTS = a.pkt.ts
	return stDone, nil
}

// limitError is the error of an access unit of n NALUs and size bytes that
// exceeds a limit.
func (a *videoAssembler) limitError(n, size int) error {
	if n > a.maxN {
		return fmt.Errorf("NALU count (%d) exceeds maximum allowed (%d)", n, a.maxN)
	}
	return fmt.Errorf("access unit size (%d) is too big, maximum is %d", size, a.maxLen)
}

// emitFrame hands the access unit out with timestamp ts.
func (a *videoAssembler) emitFrame(ts uint32, emit func(unit)) {
	u := unit{ts: ts, nalus: a.nalus(a.buf, a.frame), buf: a.buf, pool: a.pool}
	a.buf, a.frame, a.frameSize = nil, a.frame[:0], 0
	emit(u)
}

// dropAll forgets the access unit and any completed fragment, keeping the
// buffers.
func (a *videoAssembler) dropAll() {
	a.buf, a.frame, a.frameSize = a.buf[:0], a.frame[:0], 0
	a.next = a.next[:0]
}

// source returns the bytes the packet's NALUs are in.
func (a *videoAssembler) source(src naluSource) []byte {
	switch src {
	case srcBuf:
		return a.buf
	case srcNext:
		return a.next
	}
	return a.pkt.payload
}

// curSize is the total size of the packet's NALUs.
func (a *videoAssembler) curSize() int {
	n := 0
	for _, s := range a.cur {
		n += s.end - s.off
	}
	return n
}

// copyCur appends the packet's NALUs, now in from, to dst and points
// a.cur at their new place.
func (a *videoAssembler) copyCur(dst, from []byte) []byte {
	for i, s := range a.cur {
		off := len(dst)
		dst = a.appendBytes(dst, from[s.off:s.end])
		a.cur[i] = span{off, len(dst)}
	}
	return dst
}

// nalus returns the NALUs of frame in b as slices the receiver owns. The
// slice headers are carved from a chunk allocated naluChunk at a time and
// never written again once handed out.
func (a *videoAssembler) nalus(b []byte, frame []span) [][]byte {
	n := len(frame)
	if n > cap(a.chunk)-len(a.chunk) {
		a.chunk = make([][]byte, 0, max(naluChunk, n))
	}
	start := len(a.chunk)
	for _, s := range frame {
		a.chunk = append(a.chunk, b[s.off:s.end:s.end])
	}
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

// appendBytes appends p to b, taking b from the pool when nil and moving it
// to a bigger buffer when full (the smaller one goes back to the pool).
func (a *videoAssembler) appendBytes(b, p []byte) []byte {
	if b == nil {
		b = a.pool.get()
	}
	if len(b)+len(p) > cap(b) {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+len(p)))
		a.copied += copy(nb, b)
		a.pool.put(b)
		b = nb
	}
	a.copied += len(p)
	return append(b, p...)
}

// beginFrag starts a fragmented NALU with its reconstructed header hdr and
// first payload bytes. An H.264 fragment with another timestamp than the
// pending access unit starts in next: it most likely ends with that
// timestamp too and then starts the next access unit.
func (a *videoAssembler) beginFrag(hdr []byte, p []byte) {
	a.fragInNext = a.codec == ringstore.CodecH264 && len(a.frame) > 0 && a.pkt.ts != a.frameTS
	if a.fragInNext {
		a.fragOff = 0
		a.next = a.appendBytes(a.appendBytes(a.next[:0], hdr), p)
	} else {
		a.fragOff = len(a.buf)
		a.buf = a.appendBytes(a.appendBytes(a.buf, hdr), p)
	}
	a.fragSize = len(hdr) + len(p)
}

// appendFrag adds the payload of a continuation fragment.
func (a *videoAssembler) appendFrag(p []byte) {
	if a.fragInNext {
		a.next = a.appendBytes(a.next, p)
	} else {
		a.buf = a.appendBytes(a.buf, p)
	}
}

// endFrag makes the completed fragmented NALU the packet's only NALU.
func (a *videoAssembler) endFrag() naluSource {
	a.fragSize = 0
	if a.fragInNext {
		a.cur = append(a.cur, span{0, len(a.next)})
		return srcNext
	}
	a.cur = append(a.cur, span{a.fragOff, len(a.buf)})
	return srcBuf
}

// resetFrag drops the fragmented NALU in progress (gortsplib's
// resetFragments).
func (a *videoAssembler) resetFrag() {
	if a.fragSize == 0 {
		return
	}
	a.fragSize = 0
	a.dropCompleted(srcBuf)
}

// dropCompleted forgets the bytes of a completed fragmented NALU that was
// not added to the access unit.
func (a *videoAssembler) dropCompleted(src naluSource) {
	switch {
	case src == srcNext || (src == srcBuf && a.fragInNext):
		a.next = a.next[:0]
	case src == srcBuf:
		a.buf = a.buf[:a.fragOff]
	}
}

// h264NALUs mirrors rtph264.Decoder.decodeNALUs: it leaves the packet's
// NALUs in a.cur, as spans of the returned source.
func (a *videoAssembler) h264NALUs() (naluSource, decodeStatus, error) {
	pl := a.pkt.payload
	if len(pl) < 1 {
		a.resetFrag()
		return 0, stFailed, errors.New("payload is too short")
	}
	src := srcPacket
	switch typ := h264.NALUType(pl[0] & 0x1f); typ {
	case h264.NALUTypeFUA:
		if len(pl) < 2 {
			return 0, stFailed, errors.New("invalid FU-A packet (invalid size)")
		}
		start, end := pl[1]>>7, pl[1]>>6&1
		if start == 1 {
			a.resetFrag()
			hdr := [1]byte{pl[0]&0x60 | pl[1]&0x1f}
			a.beginFrag(hdr[:], pl[2:])
			a.fragNextSeq = a.pkt.seq + 1
			a.started = true
			if end == 0 {
				return 0, stMore, nil
			}
			src = a.endFrag()
			break
		}
		if st, err := a.continueFrag(pl[2:], "FU-A packet"); st != stDone {
			return 0, st, err
		}
		if pl[1]>>6&1 != 1 {
			return 0, stMore, nil
		}
		src = a.endFrag()
	case h264.NALUTypeSTAPA:
		a.resetFrag()
		if err := a.aggregated(pl[1:], true); err != nil {
			return 0, stFailed, err
		}
		a.started = true
	case h264.NALUTypeSTAPB, h264.NALUTypeMTAP16, h264.NALUTypeMTAP24, h264.NALUTypeFUB:
		a.resetFrag()
		a.started = true
		return 0, stFailed, fmt.Errorf("packet type not supported (%v)", typ)
	default:
		a.resetFrag()
		a.started = true
		a.cur = append(a.cur, span{0, len(pl)})
	}
	if len(a.cur) == 1 {
		if err := a.removeAnnexB(a.source(src)); err != nil {
			a.dropCompleted(src)
			return 0, stFailed, err
		}
	}
	return src, stDone, nil
}

// continueFrag adds a continuation fragment's payload p (H.264 FU-A or
// H.265 FU), mirroring the decoders' checks.
func (a *videoAssembler) continueFrag(p []byte, what string) (decodeStatus, error) {
	if a.fragSize == 0 {
		if !a.started {
			return stNonStarting, nil
		}
		return stFailed, fmt.Errorf("invalid %s (non-starting)", what)
	}
	if a.pkt.seq != a.fragNextSeq {
		a.resetFrag()
		return stFailed, errors.New("discarding frame since a RTP packet is missing")
	}
	if a.fragSize+len(p) > a.maxLen {
		size := a.fragSize + len(p)
		a.resetFrag()
		return stFailed, fmt.Errorf("NALU size (%d) is too big, maximum is %d", size, a.maxLen)
	}
	a.fragSize += len(p)
	a.appendFrag(p)
	a.fragNextSeq++
	return stDone, nil
}

// aggregated parses the NALUs of an H.264 STAP-A (zero-size padding
// allowed) or H.265 aggregation packet into a.cur.
func (a *videoAssembler) aggregated(p []byte, stapA bool) error {
	off := len(a.pkt.payload) - len(p)
	for {
		if len(p) < 2 {
			return errors.New("invalid aggregation packet (invalid size)")
		}
		size := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		off += 2
		if size == 0 && stapA {
			if allZero(p) {
				break
			}
			return errors.New("invalid STAP-A packet (invalid size)")
		}
		if size == 0 || size > len(p) {
			return errors.New("invalid aggregation packet (invalid size)")
		}
		a.cur = append(a.cur, span{off, off + size})
		p = p[size:]
		off += size
		if len(p) == 0 {
			break
		}
	}
	if len(a.cur) == 0 {
		return errors.New("STAP-A packet doesn't contain any NALU")
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// removeAnnexB mirrors rtph264.Decoder.removeAnnexB for the packet's single
// NALU, in b: once a NALU contained a 4-byte start code, every single NALU
// is split at 3- and 4-byte start codes (which are left out of the spans).
func (a *videoAssembler) removeAnnexB(b []byte) error {
	s := a.cur[0]
	nalu := b[s.off:s.end]
	if !a.annexB && bytes.Contains(nalu, []byte{0, 0, 0, 1}) {
		a.annexB = true
	}
	if !a.annexB {
		return nil
	}
	// gortsplib prepends 00 00 00 01 when missing: the loop then starts
	// at the NALU with start = 0 either way. mediacommon's size limit
	// cannot trip: a NALU is at most MaxAccessUnitSize.
	a.cur = a.cur[:0]
	i, start := 0, 0
	for i < len(nalu) {
		d := nalu[i:min(i+4, len(nalu))]
		switch {
		case len(d) >= 3 && d[0] == 0 && d[1] == 0 && d[2] == 1:
			if i > start {
				a.cur = append(a.cur, span{s.off + start, s.off + i})
			}
			i += 3
			start = i
		case len(d) >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 1:
			if i > start {
				a.cur = append(a.cur, span{s.off + start, s.off + i})
			}
			i += 4
			start = i
		default:
			i++
		}
	}
	if i > start {
		a.cur = append(a.cur, span{s.off + start, s.off + i})
	}
	if len(a.cur) == 0 {
		return h264.ErrAnnexBNoNALUs
	}
	return nil
}

// h265NALUs mirrors rtph265.Decoder.decodeNALUs.
func (a *videoAssembler) h265NALUs() (naluSource, decodeStatus, error) {
	pl := a.pkt.payload
	if len(pl) < 2 {
		a.resetFrag()
		return 0, stFailed, errors.New("payload is too short")
	}
	switch h265.NALUType((pl[0] >> 1) & 0x3f) {
	case h265.NALUType_AggregationUnit:
		a.resetFrag()
		if err := a.aggregated(pl[2:], false); err != nil {
			return 0, stFailed, err
		}
		a.started = true
	case h265.NALUType_FragmentationUnit:
		if len(pl) < 3 {
			a.resetFrag()
			return 0, stFailed, errors.New("payload is too short")
		}
		start, end := pl[2]>>7, pl[2]>>6&1
		if start == 1 {
			a.resetFrag()
			if end != 0 {
				return 0, stFailed, errors.New("invalid fragmentation unit (can't contain both a start and end bit)")
			}
			hdr := [2]byte{pl[0]&0x81 | (pl[2]&0x3f)<<1, pl[1]}
			a.beginFrag(hdr[:], pl[3:])
			a.fragNextSeq = a.pkt.seq + 1
			a.started = true
			return 0, stMore, nil
		}
		if st, err := a.continueFrag(pl[3:], "fragmentation unit"); st != stDone {
			return 0, st, err
		}
		if end != 1 {
			return 0, stMore, nil
		}
		return a.endFrag(), stDone, nil
	case h265.NALUType_PACI:
		a.resetFrag()
		return 0, stFailed, errors.New("PACI packets are not supported")
	default:
		a.resetFrag()
		a.cur = append(a.cur, span{0, len(pl)})
	}
	return srcPacket, stDone, nil
}

// RTP header layout (RFC 3550 section 5.1) and RFC 8285 extension profiles.
const (
	rtpHeaderSize    = 12
	rtpExtOneByte    = 0xBEDE
	rtpExtTwoByte    = 0x1000
	rtpExtIDReserved = 0xF
	rtpTooShort      = "RTP packet too short"
)

// parseRTP reads the header of RTP packet b into p, accepting and refusing
// exactly what pion's rtp.Packet.Unmarshal (v1.8.21) does, quirks included
// (the version is not checked; a one-byte extension element with the
// reserved ID 15 ends the header there).
func parseRTP(b []byte, p *rtpPayload) error {
	if len(b) < rtpHeaderSize {
		return fmt.Errorf("%s: %d < %d bytes of header", rtpTooShort, len(b), rtpHeaderSize)
	}
	n := rtpHeaderSize + 4*int(b[0]&0x0f)
	if len(b) < n {
		return fmt.Errorf("%s: %d < %d bytes of header with CSRCs", rtpTooShort, len(b), n)
	}
	p.marker = b[1]&0x80 != 0
	p.seq = binary.BigEndian.Uint16(b[2:])
	p.ts = binary.BigEndian.Uint32(b[4:])
	p.ssrc = binary.BigEndian.Uint32(b[8:])
	if b[0]&0x10 != 0 {
		var err error
		if n, err = rtpExtension(b, n); err != nil {
			return err
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		if end <= n {
			return fmt.Errorf("%s: no room for padding", rtpTooShort)
		}
		end -= int(b[end-1])
	}
	if end < n {
		return fmt.Errorf("%s: padding longer than the payload", rtpTooShort)
	}
	p.payload = b[n:end]
	return nil
}

// rtpExtension skips the header extension starting at b[n:] and returns
// where the payload starts.
func rtpExtension(b []byte, n int) (int, error) {
	if len(b) < n+4 {
		return 0, fmt.Errorf("%s: no room for the header extension", rtpTooShort)
	}
	profile := binary.BigEndian.Uint16(b[n:])
	extEnd := n + 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	n += 4
	if len(b) < extEnd {
		return 0, fmt.Errorf("%s: %d < %d bytes of header extension", rtpTooShort, len(b), extEnd)
	}
	if profile != rtpExtOneByte && profile != rtpExtTwoByte {
		return extEnd, nil
	}
	for n < extEnd {
		if b[n] == 0 { // padding
			n++
			continue
		}
		var size int
		if profile == rtpExtOneByte {
			id := b[n] >> 4
			size = int(b[n]&0x0f) + 1
			n++
			if id == rtpExtIDReserved {
				break
			}
		} else {
			n++
			if len(b) <= n {
				return 0, fmt.Errorf("%s: truncated header extension element", rtpTooShort)
			}
			size = int(b[n])
			n++
		}
		if len(b) <= n+size {
			return 0, fmt.Errorf("%s: truncated header extension element", rtpTooShort)
		}
		n += size
	}
	return n, nil
}
