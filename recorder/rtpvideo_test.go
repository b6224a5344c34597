package recorder

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"unsafe"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/nvrfw/nvr/ringstore"
)

// rtpOpts are the optional header parts of a test RTP packet.
type rtpOpts struct {
	csrcs   int
	ext     []byte // header extension body (a multiple of 4 bytes), profile extProf
	extProf uint16
	padding int
}

// rtpPacket builds one RTP packet.
func rtpPacket(marker bool, seq uint16, ts uint32, payload []byte, o rtpOpts) []byte {
	b := []byte{0x80, 96, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44}
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	b[0] |= byte(o.csrcs)
	for i := 0; i < o.csrcs; i++ {
		b = append(b, 0, 0, 0, byte(i))
	}
	if o.ext != nil {
		b[0] |= 0x10
		b = binary.BigEndian.AppendUint16(b, o.extProf)
		b = binary.BigEndian.AppendUint16(b, uint16(len(o.ext)/4))
		b = append(b, o.ext...)
	}
	b = append(b, payload...)
	if o.padding > 0 {
		b[0] |= 0x20
		b = append(b, make([]byte, o.padding-1)...)
		b = append(b, byte(o.padding))
	}
	return b
}

// gotUnit is one emitted access unit, or the gortsplibPath's, as compared.
type gotUnit struct {
	ts    uint32
	nalus [][]byte
}

func (u gotUnit) String() string {
	return fmt.Sprintf("{ts %d, %d NALUs %x}", u.ts, len(u.nalus), u.nalus)
}

// pushResult is what one packet produced.
type pushResult struct {
	units []gotUnit
	err   bool
}

// gortsplibPath is today's path: pion's Unmarshal and recordable()'s closure.
type gortsplibPath struct{ dec depacketize }

func newGortsplibPath(t testing.TB, codec ringstore.Codec) *gortsplibPath {
	var f format.Format = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	if codec == ringstore.CodecH265 {
		f = &format.H265{PayloadTyp: 96}
	}
	_, dec, ok := recordable(f)
	if !ok {
		t.Fatalf("recordable(%T) refused", f)
	}
	return &gortsplibPath{dec: dec}
}

func (r *gortsplibPath) push(pkt []byte) pushResult {
	var p rtp.Packet
	if err := p.Unmarshal(bytes.Clone(pkt)); err != nil {
		return pushResult{err: true}
	}
	units, err := r.dec(&p)
	var res pushResult
	res.err = err != nil
	for _, u := range units {
		res.units = append(res.units, gotUnit{ts: u.ts, nalus: u.nalus})
	}
	return res
}

// checked runs a videoAssembler the way the fast path will: every packet
// is pushed from a reused buffer that is overwritten after the call, and
// every emitted unit is checked to live in its buf, copied out, scribbled
// over and given back to the pool (so that a NALU still referenced by the
// assembler, or two units sharing bytes, show up as wrong bytes later).
type checked struct {
	t       testing.TB
	a       *videoAssembler
	pool    *framePool
	scratch []byte
}

func newChecked(t testing.TB, codec ringstore.Codec) *checked {
	pool := &framePool{}
	return &checked{t: t, a: newVideoAssembler(codec, pool), pool: pool, scratch: make([]byte, 0, 70000)}
}

func (c *checked) push(pkt []byte) pushResult {
	c.scratch = append(c.scratch[:0], pkt...)
	var res pushResult
	err := c.a.push(c.scratch, func(u unit) {
		if u.track != 0 || !u.ntp.IsZero() || !u.recv.IsZero() || u.data != nil {
			c.t.Errorf("emitted unit has fields other than ts, nalus and buf set: %+v", u)
		}
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(u.buf)))
		hi := lo + uintptr(cap(u.buf))
		var g gotUnit
		g.ts = u.ts
		for _, n := range u.nalus {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(n)))
			if len(n) == 0 || p < lo || p+uintptr(cap(n)) > hi {
				c.t.Errorf("NALU of %d bytes is not a non-empty slice of unit.buf", len(n))
			}
			g.nalus = append(g.nalus, bytes.Clone(n))
		}
		full := u.buf[:cap(u.buf)]
		for i := range full {
			full[i] = 0xA5
		}
		c.pool.put(u.buf)
		res.units = append(res.units, g)
	})
	for i := range c.scratch {
		c.scratch[i] = 0x5A
	}
	res.err = err != nil
	return res
}

// equalResults compares two pushes' outcomes.
func equalResults(a, b pushResult) bool {
	if a.err != b.err || len(a.units) != len(b.units) {
		return false
	}
	for i := range a.units {
		x, y := a.units[i], b.units[i]
		if x.ts != y.ts || len(x.nalus) != len(y.nalus) {
			return false
		}
		for j := range x.nalus {
			if !bytes.Equal(x.nalus[j], y.nalus[j]) {
				return false
			}
		}
	}
	return true
}

// differential pushes pkts through both paths and fails on the first
// packet where they differ. It returns the assembler's results.
func differential(t testing.TB, codec ringstore.Codec, pkts [][]byte) []pushResult {
	t.Helper()
	ref, got := newGortsplibPath(t, codec), newChecked(t, codec)
	var out []pushResult
	for i, p := range pkts {
		want, have := ref.push(p), got.push(p)
		if !equalResults(want, have) {
			t.Fatalf("packet %d (%x): gortsplib path gave %+v, videoAssembler %+v", i, p, want, have)
		}
		if len(p) >= 12 {
			if s := binary.BigEndian.Uint32(p[8:]); got.a.ssrc() != s && !have.err {
				t.Fatalf("packet %d: ssrc() = %#x, want %#x", i, got.a.ssrc(), s)
			}
		}
		out = append(out, have)
	}
	return out
}

var (
	idr   = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff}
	sps   = []byte{0x67, 0x42, 0xc0, 0x1f}
	pps   = []byte{0x68, 0xce, 0x3c, 0x80}
	slice = []byte{0x41, 0x9a, 0x02, 0x03}
)

// fuA splits nalu into n FU-A payloads.
func fuA(nalu []byte, n int) [][]byte {
	body := nalu[1:]
	var out [][]byte
	step := (len(body) + n - 1) / n
	for i := 0; i < n; i++ {
		part := body[min(i*step, len(body)):min((i+1)*step, len(body))]
		hdr := nalu[0] & 0x1f
		if i == 0 {
			hdr |= 0x80
		}
		if i == n-1 {
			hdr |= 0x40
		}
		out = append(out, append([]byte{nalu[0]&0xe0 | 28, hdr}, part...))
	}
	return out
}

// fuH265 splits an H.265 nalu into n FU payloads.
func fuH265(nalu []byte, n int) [][]byte {
	body := nalu[2:]
	typ := (nalu[0] >> 1) & 0x3f
	var out [][]byte
	step := (len(body) + n - 1) / n
	for i := 0; i < n; i++ {
		part := body[min(i*step, len(body)):min((i+1)*step, len(body))]
		hdr := typ
		if i == 0 {
			hdr |= 0x80
		}
		if i == n-1 {
			hdr |= 0x40
		}
		out = append(out, append([]byte{nalu[0]&0x81 | 49<<1, nalu[1], hdr}, part...))
	}
	return out
}

// aggregate builds a STAP-A (H.264) or AP (H.265) payload.
func aggregate(hdr []byte, nalus ...[]byte) []byte {
	b := bytes.Clone(hdr)
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
	}
	return b
}

var (
	h265VPS = []byte{0x40, 0x01, 0x0c, 0x01}
	h265SPS = []byte{0x42, 0x01, 0x01, 0x01}
	h265IDR = []byte{0x26, 0x01, 0xaf, 0x08, 0x42, 0x23, 0x10, 0x5a}
	h265P   = []byte{0x02, 0x01, 0xd0, 0x08}
)

// bigNALU is an H.264 NALU of n bytes.
func bigNALU(hdr byte, n int) []byte {
	b := make([]byte, n)
	b[0] = hdr
	for i := 1; i < n; i++ {
		b[i] = byte(i*7 + 1)
	}
	return b
}

func TestVideoAssemblerTable(t *testing.T) {
	var o rtpOpts
	fu := fuA(idr, 3)
	hfu := fuH265(h265IDR, 3)
	big := bigNALU(0x65, 60000)
	u := func(ts uint32, nalus ...[]byte) gotUnit { return gotUnit{ts: ts, nalus: nalus} }
	ok := func(units ...gotUnit) pushResult { return pushResult{units: units} }
	fail := pushResult{err: true}
	none := pushResult{}
	type tc struct {
		name  string
		codec ringstore.Codec
		pkts  [][]byte
		want  []pushResult // nil: only compared with the gortsplib path
	}
	tests := []tc{
		{"single NALUs", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 1, 100, sps, o), rtpPacket(false, 2, 100, pps, o), rtpPacket(true, 3, 100, idr, o),
		}, []pushResult{none, none, ok(u(100, sps, pps, idr))}},
		{"STAP-A", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 1, 100, aggregate([]byte{24}, sps, pps), o), rtpPacket(true, 2, 100, idr, o),
		}, []pushResult{none, ok(u(100, sps, pps, idr))}},
		{"STAP-A zero padding", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, append(aggregate([]byte{24}, sps, pps), 0, 0, 0), o),
		}, []pushResult{ok(u(100, sps, pps))}},
		{"FU-A across 3 packets", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 7, 100, fu[0], o), rtpPacket(false, 8, 100, fu[1], o), rtpPacket(true, 9, 100, fu[2], o),
		}, []pushResult{none, none, ok(u(100, idr))}},
		{"FU-A missing start ignored", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 8, 100, fu[1], o), rtpPacket(true, 9, 100, fu[2], o), rtpPacket(true, 10, 200, slice, o),
		}, []pushResult{none, none, ok(u(200, slice))}},
		{"FU-A missing middle", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 7, 100, fu[0], o), rtpPacket(true, 9, 100, fu[2], o), rtpPacket(true, 10, 200, slice, o),
		}, []pushResult{none, fail, ok(u(200, slice))}},
		{"FU-A after a loss with a previous start", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, slice, o), rtpPacket(false, 8, 200, fu[1], o),
		}, []pushResult{ok(u(100, slice)), fail}},
		{"H.264 no marker: split by timestamp", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 1, 100, sps, o), rtpPacket(false, 2, 100, idr, o),
			rtpPacket(false, 3, 200, slice, o), rtpPacket(false, 4, 300, fu[0], o),
			rtpPacket(false, 5, 300, fu[1], o), rtpPacket(false, 6, 300, fu[2], o),
		}, []pushResult{none, none, ok(u(100, sps, idr)), none, none, ok(u(200, slice))}},
		{"H.264 FU-A timestamp changes mid NALU", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 1, 100, slice, o), rtpPacket(false, 2, 100, fu[0], o),
			rtpPacket(false, 3, 100, fu[1], o), rtpPacket(true, 4, 200, fu[2], o),
			rtpPacket(true, 5, 200, slice, o),
		}, nil},
		{"H.264 FU-A started with a new timestamp ends with the old one", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 1, 100, slice, o), rtpPacket(false, 2, 200, fu[0], o),
			rtpPacket(false, 3, 200, fu[1], o), rtpPacket(true, 4, 100, fu[2], o),
		}, nil},
		{"padding", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, idr, rtpOpts{padding: 5}),
		}, []pushResult{ok(u(100, idr))}},
		{"padding longer than packet", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, idr, rtpOpts{padding: 5})[:13],
		}, []pushResult{fail}},
		{"extension and CSRCs", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, idr, rtpOpts{csrcs: 2, extProf: 0xBEDE, ext: []byte{0x10, 0xaa, 0, 0}}),
			rtpPacket(true, 2, 200, slice, rtpOpts{extProf: 0x1234, ext: []byte{1, 2, 3, 4, 5, 6, 7, 8}}),
			rtpPacket(true, 3, 300, slice, rtpOpts{extProf: 0x1000, ext: []byte{1, 1, 0xaa, 0}}),
			rtpPacket(true, 4, 400, slice, rtpOpts{extProf: 0xBEDE, ext: []byte{0xf0, 0, 0, 0}}),
		}, []pushResult{ok(u(100, idr)), ok(u(200, slice)), ok(u(300, slice)), ok(u(400, append([]byte{0, 0, 0}, slice...)))}},
		{"truncated header", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, nil, rtpOpts{csrcs: 3})[:20], {0x80, 0x60},
		}, []pushResult{fail, fail}},
		{"empty payload", ringstore.CodecH264, [][]byte{rtpPacket(true, 1, 100, nil, o)}, []pushResult{fail}},
		{"unsupported H.264 types", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, []byte{25, 0}, o), rtpPacket(true, 2, 100, []byte{26, 0}, o),
			rtpPacket(true, 3, 100, []byte{27, 0}, o), rtpPacket(true, 4, 100, []byte{29, 0x80}, o),
		}, []pushResult{fail, fail, fail, fail}},
		{"Annex-B inside packets", ringstore.CodecH264, [][]byte{
			rtpPacket(true, 1, 100, append(append([]byte{0, 0, 0, 1}, sps...), append([]byte{0, 0, 1}, pps...)...), o),
			rtpPacket(true, 2, 200, slice, o),
			rtpPacket(true, 3, 300, []byte{0, 0, 1}, o),
		}, []pushResult{ok(u(100, sps, pps)), ok(u(200, slice)), fail}},
		{"too many NALUs", ringstore.CodecH264, append(packetsN(h264.MaxNALUsPerAccessUnit+1, func(i int) []byte {
			return rtpPacket(false, uint16(i), 100, slice, o)
		}), rtpPacket(true, 99, 200, idr, o)), nil},
		{"oversize access unit", ringstore.CodecH264, append(packetsN(h264.MaxAccessUnitSize/60000+2, func(i int) []byte {
			return rtpPacket(false, uint16(i), 100, aggregate([]byte{24}, big[:30000], big[:30000]), o)
		}), rtpPacket(true, 999, 200, idr, o)), nil},
		{"oversize fragmented NALU", ringstore.CodecH264, append(packetsN(h264.MaxAccessUnitSize/60000+2, func(i int) []byte {
			hdr := byte(0)
			if i == 0 {
				hdr = 0x80
			}
			return rtpPacket(false, uint16(i), 100, append([]byte{28 | 0x60, hdr | 5}, big...), o)
		}), rtpPacket(true, 999, 200, idr, o)), nil},
		{"H.265 AP and single", ringstore.CodecH265, [][]byte{
			rtpPacket(false, 1, 100, aggregate([]byte{48 << 1, 1}, h265VPS, h265SPS), o), rtpPacket(true, 2, 100, h265IDR, o),
		}, []pushResult{none, ok(u(100, h265VPS, h265SPS, h265IDR))}},
		{"H.265 FU", ringstore.CodecH265, [][]byte{
			rtpPacket(false, 1, 100, hfu[0], o), rtpPacket(false, 2, 100, hfu[1], o), rtpPacket(true, 3, 100, hfu[2], o),
		}, []pushResult{none, none, ok(u(100, h265IDR))}},
		{"H.265 FU missing start ignored", ringstore.CodecH265, [][]byte{
			rtpPacket(false, 2, 100, hfu[1], o), rtpPacket(true, 3, 100, hfu[2], o),
		}, []pushResult{none, none}},
		{"H.265 missing marker, timestamp change", ringstore.CodecH265, [][]byte{
			rtpPacket(false, 1, 100, h265IDR, o), rtpPacket(false, 2, 200, h265P, o),
			rtpPacket(false, 3, 200, hfu[0], o), rtpPacket(false, 4, 300, h265P, o),
			rtpPacket(true, 5, 400, h265P, o),
		}, []pushResult{none, ok(u(100, h265IDR)), none, ok(u(200, h265P)), ok(u(300, h265P), u(400, h265P))}},
		{"H.265 unit then error in one push", ringstore.CodecH265, [][]byte{
			rtpPacket(false, 1, 100, h265IDR, o), rtpPacket(true, 2, 200, []byte{50 << 1, 1, 0}, o),
		}, []pushResult{none, {units: []gotUnit{u(100, h265IDR)}, err: true}}},
		{"H.265 AP drops the fragment in progress", ringstore.CodecH265, [][]byte{
			rtpPacket(false, 1, 100, hfu[0], o), rtpPacket(false, 5, 100, aggregate([]byte{48 << 1, 1}, h265VPS, h265SPS), o),
			rtpPacket(false, 2, 100, hfu[1], o), rtpPacket(true, 3, 100, hfu[2], o),
		}, []pushResult{none, none, fail, fail}},
		{"H.264 STAP-A drops the fragment in progress", ringstore.CodecH264, [][]byte{
			rtpPacket(false, 1, 100, fu[0], o), rtpPacket(false, 5, 100, aggregate([]byte{24}, sps, pps), o),
			rtpPacket(false, 2, 100, fu[1], o), rtpPacket(true, 3, 100, fu[2], o),
		}, []pushResult{none, none, fail, fail}},
		{"H.265 FU start and end", ringstore.CodecH265, [][]byte{
			rtpPacket(true, 1, 100, []byte{49 << 1, 1, 0xc1, 5}, o),
		}, []pushResult{fail}},
		{"H.265 too many NALUs", ringstore.CodecH265, append(packetsN(h265.MaxNALUsPerAccessUnit+1, func(i int) []byte {
			return rtpPacket(false, uint16(i), 100, h265P, o)
		}), rtpPacket(true, 99, 200, h265IDR, o)), nil},
		{"H.265 too many NALUs for the end marker", ringstore.CodecH265, append(packetsN(h265.MaxNALUsPerAccessUnit, func(i int) []byte {
			return rtpPacket(false, uint16(i), 100, h265P, o)
		}), rtpPacket(true, 99, 200, h265IDR, o)), nil},
		{"H.265 oversize access unit", ringstore.CodecH265, append(packetsN(h265.MaxAccessUnitSize/60000+2, func(i int) []byte {
			return rtpPacket(false, uint16(i), 100, aggregate([]byte{48 << 1, 1}, big[:30000], big[:30000]), o)
		}), rtpPacket(true, 999, 100, h265IDR, o)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := differential(t, tt.codec, tt.pkts)
			if tt.want == nil {
				return
			}
			for i := range tt.want {
				if !equalResults(got[i], tt.want[i]) {
					t.Errorf("packet %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func packetsN(n int, f func(i int) []byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// TestVideoAssemblerLimitsTrip checks that the limit cases of the table do
// reach gortsplib's errors (differential alone would pass if neither did).
func TestVideoAssemblerLimitsTrip(t *testing.T) {
	slices := packetsN(h264.MaxNALUsPerAccessUnit+1, func(i int) []byte { return rtpPacket(false, uint16(i), 100, slice, rtpOpts{}) })
	res := differential(t, ringstore.CodecH264, slices)
	if !res[len(res)-1].err {
		t.Errorf("NALU %d of an access unit accepted", len(res))
	}
	big := bigNALU(0x65, 60000)
	n := h264.MaxAccessUnitSize/60000 + 1
	fus := packetsN(n, func(i int) []byte {
		hdr := byte(5)
		if i == 0 {
			hdr |= 0x80
		}
		return rtpPacket(false, uint16(i), 100, append([]byte{28 | 0x60, hdr}, big...), rtpOpts{})
	})
	res = differential(t, ringstore.CodecH264, fus)
	if !res[len(res)-1].err {
		t.Errorf("fragmented NALU of %d bytes accepted", n*60000)
	}
	// A fragmented NALU of exactly the maximum size passes; one byte
	// more fails.
	for _, extra := range []int{0, 1} {
		total := h264.MaxAccessUnitSize + extra // header byte included
		pkts := fragmentedOfSize(ringstore.CodecH264, total, 0, 100)
		pkts[len(pkts)-1][1] |= 0x80 // the marker bit on the last
		res = differential(t, ringstore.CodecH264, pkts)
		if last := res[len(res)-1]; last.err != (extra == 1) || (extra == 0 && len(last.units) != 1) {
			t.Errorf("fragmented NALU of %d bytes: last packet gave %d units, error %v", total, len(last.units), last.err)
		}
	}
}

// fragmentedOfSize returns the packets of one fragmented NALU of exactly
// size bytes (headers included), none marked, sequence numbers from seq.
func fragmentedOfSize(codec ringstore.Codec, size int, seq uint16, ts uint32) [][]byte {
	hdrLen, body := 1, bigNALU(0x65, 60000)
	if codec == ringstore.CodecH265 {
		hdrLen = 2
	}
	var pkts [][]byte
	for i, left := 0, size-hdrLen; left > 0; i++ {
		n := min(left, len(body))
		left -= n
		fu := byte(5)
		if i == 0 {
			fu |= 0x80
		}
		if left == 0 {
			fu |= 0x40
		}
		pl := []byte{28 | 0x60, fu}
		if codec == ringstore.CodecH265 {
			pl = []byte{49 << 1, 1, fu}
		}
		pkts = append(pkts, rtpPacket(false, seq+uint16(i), ts, append(pl, body[:n]...), rtpOpts{}))
	}
	return pkts
}

// TestVideoAssemblerSizeBoundaries: access units of exactly the maximum
// size pass, one byte more fails; an H.265 unit without a marker is lost
// when the end marker the closure adds would make it too big.
func TestVideoAssemblerSizeBoundaries(t *testing.T) {
	for _, codec := range []ringstore.Codec{ringstore.CodecH264, ringstore.CodecH265} {
		last := slice
		if codec == ringstore.CodecH265 {
			last = h265P
		}
		for _, extra := range []int{0, 1} {
			pkts := fragmentedOfSize(codec, h264.MaxAccessUnitSize-len(last)+extra, 0, 100)
			pkts = append(pkts, rtpPacket(true, 999, 100, last, rtpOpts{}))
			res := differential(t, codec, pkts)
			if r := res[len(res)-1]; r.err != (extra == 1) || len(r.units) != 1-extra {
				t.Errorf("%s access unit of max+%d bytes: last packet gave %d units, error %v", codec, extra, len(r.units), r.err)
			}
		}
	}
	// A fragmented NALU over the limit is dropped alone: the access unit
	// it was to join goes on.
	for _, codec := range []ringstore.Codec{ringstore.CodecH264, ringstore.CodecH265} {
		nalu := slice
		if codec == ringstore.CodecH265 {
			nalu = h265P
		}
		pkts := [][]byte{rtpPacket(false, 50, 100, nalu, rtpOpts{})}
		pkts = append(pkts, fragmentedOfSize(codec, h264.MaxAccessUnitSize+1, 100, 100)...)
		pkts = append(pkts, rtpPacket(true, 999, 100, nalu, rtpOpts{}))
		res := differential(t, codec, pkts)
		if r := res[len(res)-1]; r.err || len(r.units) != 1 || len(r.units[0].nalus) != 2 {
			t.Errorf("%s: after an oversize fragmented NALU, the access unit ends as %+v", codec, r)
		}
	}
	for _, extra := range []int{0, 1} {
		pkts := fragmentedOfSize(ringstore.CodecH265, h265.MaxAccessUnitSize-len(h265EndMarker)+extra, 0, 100)
		pkts = append(pkts, rtpPacket(true, 999, 200, h265P, rtpOpts{}))
		res := differential(t, ringstore.CodecH265, pkts)
		if r := res[len(res)-1]; r.err || len(r.units) != 2-extra {
			t.Errorf("H.265 unit of max-3+%d bytes, then another timestamp: %d units, error %v", extra, len(r.units), r.err)
		}
	}
}

func TestVideoAssemblerOtherCodec(t *testing.T) {
	a := newVideoAssembler(ringstore.CodecAAC, nil)
	if err := a.push(rtpPacket(true, 1, 1, idr, rtpOpts{}), func(unit) { t.Error("emitted") }); err == nil {
		t.Error("AAC assembler accepted a packet")
	}
}

func TestFramePool(t *testing.T) {
	var nilPool *framePool
	if b := nilPool.get(); len(b) != 0 || cap(b) != frameBufSize {
		t.Errorf("nil pool get: len %d cap %d", len(b), cap(b))
	}
	nilPool.put(make([]byte, 10)) // must not panic
	var p framePool
	for _, tc := range []struct {
		cap  int
		kept bool
	}{{frameBufMaxPooled, true}, {frameBufMaxPooled + 1, false}} {
		p.put(make([]byte, 5, tc.cap))
		b := p.get()
		if len(b) != 0 || (cap(b) == tc.cap) != tc.kept {
			// sync.Pool may drop an entry at any GC, so only a kept
			// buffer that is too big is an error.
			if !tc.kept || cap(b) != frameBufSize {
				t.Errorf("put cap %d, get: len %d cap %d", tc.cap, len(b), cap(b))
			}
		}
	}
}

// TestVideoAssemblerSteadyStateAllocs: with a pool and units given back, a
// stream of FU-A access units (15 packets each) allocates nothing per
// packet. What remains is per access unit: the NALU slice headers, carved 64
// at a time (1/64 allocation per unit), and a buffer now and then when a GC
// empties the sync.Pool (or, under the race detector, when sync.Pool drops a
// quarter of its Puts on purpose), hence the bound of half an allocation
// per unit: one slice header array per unit, or anything per packet, fails.
// Under the race detector, which makes sync.Pool lossy, it is skipped.
func TestVideoAssemblerSteadyStateAllocs(t *testing.T) {
	if poolIsLossy() {
		t.Skip("sync.Pool drops Puts here (race detector): allocation counts say nothing about the assembler")
	}
	for _, tc := range []struct {
		name   string
		marker bool
	}{{"marker bit", true}, {"no marker bit: split by timestamp", false}} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := fuStream(t, 20000, 1400, 100)
			if !tc.marker {
				for _, p := range pkts {
					p[1] &^= 0x80
				}
			}
			pool := &framePool{}
			a := newVideoAssembler(ringstore.CodecH264, pool)
			units := 0
			emit := func(u unit) {
				units++
				if len(u.nalus) != 1 || len(u.nalus[0]) != 20000 {
					t.Errorf("unit of %d NALUs", len(u.nalus))
				}
				pool.put(u.buf)
			}
			run := func() {
				for _, p := range pkts {
					if err := a.push(p, emit); err != nil {
						t.Fatal(err)
					}
				}
			}
			run()
			// Once buffers are warm, every byte is copied once: 20000 per unit.
			copied, before := a.copied, units
			allocs := testing.AllocsPerRun(5, run)
			if perUnit := allocs / 100; perUnit > 0.5 {
				t.Errorf("%.3f allocations per access unit (%v per run of %d packets)", perUnit, allocs, len(pkts))
			}
			if n := units - before; n != 600 || a.copied-copied != n*20000 {
				t.Errorf("%d units, %d bytes copied, want 600 units, %d bytes", n, a.copied-copied, n*20000)
			}
		})
	}
}

// poolIsLossy reports whether a framePool loses buffers given back at
// once, as sync.Pool does on purpose under the race detector.
func poolIsLossy() bool {
	var p framePool
	const n = 100
	for i := 0; i < n; i++ {
		p.put(make([]byte, 0, 100))
	}
	back := 0
	for i := 0; i < n; i++ {
		if cap(p.get()) == 100 {
			back++
		}
	}
	return back < n*95/100
}

// fuStream packetizes n access units of one frameSize-byte IDR NALU with
// gortsplib's encoder (payloads up to mtu bytes), timestamps 3000 apart.
func fuStream(t testing.TB, frameSize, mtu, n int) [][]byte {
	ssrc, seq := uint32(0x1234), uint16(1)
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: mtu, SSRC: &ssrc, InitialSequenceNumber: &seq, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	nalu := bigNALU(0x65, frameSize)
	aus := make([][][]byte, n)
	for i := range aus {
		aus[i] = [][]byte{nalu}
	}
	return encodeStream(t, enc.Encode, aus)
}

// encodeStream packetizes access units with an encoder's Encode, marshaled,
// timestamps 3000 apart.
func encodeStream(t testing.TB, encode func([][]byte) ([]*rtp.Packet, error), aus [][][]byte) [][]byte {
	var out [][]byte
	for i, au := range aus {
		ps, err := encode(au)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			p.Timestamp = uint32(i * 3000)
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// h265Stream packetizes access units with gortsplib's H.265 encoder.
func h265Stream(t testing.TB, aus [][][]byte, mtu int) [][]byte {
	ssrc, seq := uint32(0x5678), uint16(65530)
	enc := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: mtu, SSRC: &ssrc, InitialSequenceNumber: &seq}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	return encodeStream(t, enc.Encode, aus)
}

// TestVideoAssemblerEncoded runs gortsplib-encoded streams through both
// paths.
func TestVideoAssemblerEncoded(t *testing.T) {
	res := differential(t, ringstore.CodecH264, fuStream(t, 5000, 1400, 5))
	if n := countUnits(res); n != 5 {
		t.Errorf("H.264: %d units, want 5", n)
	}
	hIDR := append(bytes.Clone(h265IDR), bytes.Repeat([]byte{0x33}, 4000)...)
	res = differential(t, ringstore.CodecH265, h265Stream(t, [][][]byte{
		{h265VPS, h265SPS, hIDR}, {h265P}, {h265P, h265P}, {hIDR},
	}, 1000))
	if n := countUnits(res); n != 4 {
		t.Errorf("H.265: %d units, want 4", n)
	}
}

func countUnits(res []pushResult) int {
	n := 0
	for _, r := range res {
		n += len(r.units)
	}
	return n
}

// splitFuzzInput reads a fuzz input whose byte 0 has bit 1 clear: byte 0
// chooses the codec (bit 0: H.265), then packets each preceded by a 2-byte big-endian length (a
// short last one takes what is left).
func splitFuzzInput(data []byte) (ringstore.Codec, [][]byte) {
	if len(data) == 0 {
		return ringstore.CodecH264, nil
	}
	codec := ringstore.CodecH264
	if data[0]&1 == 1 {
		codec = ringstore.CodecH265
	}
	data = data[1:]
	var pkts [][]byte
	for len(data) >= 2 && len(pkts) < 500 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		pkts = append(pkts, data[:n])
		data = data[n:]
	}
	return codec, pkts
}

// scriptedPackets reads a fuzz input whose byte 0 has bit 1 set as a
// script: every 3 bytes (kind, flags, size) make one packet, well-formed
// enough to reach deep states (fragments in sequence, timestamp splits,
// Annex-B, limits) that raw bytes rarely reach. Bit 0 of byte 0 chooses
// H.265.
func scriptedPackets(data []byte) (ringstore.Codec, [][]byte) {
	codec := ringstore.CodecH264
	if data[0]&1 == 1 {
		codec = ringstore.CodecH265
	}
	h265 := codec == ringstore.CodecH265
	var pkts [][]byte
	seq, ts := uint16(100), uint32(9000)
	for i := 1; i+3 <= len(data) && len(pkts) < 300; i += 3 {
		kind, flags, size := data[i], data[i+1], int(data[i+2])
		if flags&4 != 0 {
			seq += uint16(flags>>5) + 1 // a loss
		}
		if flags&2 != 0 {
			ts += 3000
		}
		body := bigNALU(1, size+1)[1:]
		if flags&0x80 != 0 {
			body = bigNALU(1, 60000)[1:] // big: limits
		}
		nalHdr := []byte{0x41 | (flags>>5&3)<<1} // H.264 slice, IDR, SEI...
		if h265 {
			nalHdr = []byte{(flags >> 5 & 3) << 3, 1}
		}
		nalu := append(bytes.Clone(nalHdr), body...)
		var pl []byte
		switch kind % 8 {
		case 0:
			pl = nalu
		case 1:
			if h265 {
				pl = aggregate([]byte{48 << 1, 1}, nalu, nalHdr)
			} else {
				pl = aggregate([]byte{24}, nalu, nalHdr)
			}
		case 2, 3, 4, 5:
			fu := [4]byte{0, 0x80, 0x40, 0xc0}[kind%8-2] | nalHdr[0]&0x1f
			pl = append([]byte{nalHdr[0]&0x60 | 28, fu}, body...)
			if h265 {
				fu = [4]byte{0, 0x80, 0x40, 0xc0}[kind%8-2] | 19
				pl = append([]byte{49 << 1, 1, fu}, body...)
			}
		case 6:
			pl = append([]byte{kind, flags}, body[:min(size, 4)]...) // any type
		case 7:
			pl = append(append([]byte{0, 0, 0, 1}, nalu...), append([]byte{0, 0, 1}, nalHdr...)...)
		}
		o := rtpOpts{}
		if flags&8 != 0 {
			o.padding = size%5 + 1
		}
		if flags&16 != 0 {
			o.extProf, o.ext = 0xBEDE, []byte{0x10, byte(size), 0, 0}
		}
		pkts = append(pkts, rtpPacket(flags&1 != 0, seq, ts, pl, o))
		seq++
	}
	return codec, pkts
}

// joinFuzzInput is the inverse of splitFuzzInput.
func joinFuzzInput(codec ringstore.Codec, pkts [][]byte) []byte {
	b := []byte{0}
	if codec == ringstore.CodecH265 {
		b[0] = 1
	}
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// videoSeeds are FuzzVideoAssembler's hand-built seeds (also committed
// under testdata/fuzz/FuzzVideoAssembler).
func videoSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	var o rtpOpts
	fu := fuA(idr, 3)
	hfu := fuH265(h265IDR, 3)
	seeds = append(seeds, joinFuzzInput(ringstore.CodecH264, fuStream(t, 3000, 500, 3)))
	seeds = append(seeds, joinFuzzInput(ringstore.CodecH264, [][]byte{
		rtpPacket(false, 1, 100, aggregate([]byte{24}, sps, pps), o), rtpPacket(false, 2, 100, fu[0], o),
		rtpPacket(false, 3, 100, fu[1], o), rtpPacket(true, 4, 100, fu[2], o),
		rtpPacket(false, 5, 200, slice, rtpOpts{padding: 3}), rtpPacket(false, 6, 300, fu[0], o),
		rtpPacket(false, 7, 300, fu[1], o), rtpPacket(false, 8, 300, fu[2], o), rtpPacket(true, 9, 400, slice, o),
	}))
	seeds = append(seeds, joinFuzzInput(ringstore.CodecH264, [][]byte{
		rtpPacket(true, 1, 100, append([]byte{0, 0, 0, 1}, idr...), rtpOpts{csrcs: 1, extProf: 0xBEDE, ext: []byte{0x10, 1, 0, 0}}),
		rtpPacket(true, 2, 200, append(append([]byte{}, slice...), 0, 0, 1, 0x41, 5), o),
	}))
	seeds = append(seeds, joinFuzzInput(ringstore.CodecH265, h265Stream(t, [][][]byte{
		{h265VPS, h265SPS, bytes.Repeat([]byte{0x26, 1, 7}, 400)}, {h265P}, {h265P, h265P},
	}, 600)))
	seeds = append(seeds, joinFuzzInput(ringstore.CodecH265, [][]byte{
		rtpPacket(false, 1, 100, h265IDR, o), rtpPacket(false, 2, 200, hfu[0], o),
		rtpPacket(false, 3, 200, hfu[1], o), rtpPacket(false, 4, 300, hfu[2], o),
		rtpPacket(true, 5, 300, h265P, o), rtpPacket(true, 6, 400, []byte{50 << 1, 1}, o),
	}))
	return seeds
}

// FuzzVideoAssembler is the differential test: for any packets, the
// assembler emits the same units and fails on the same packets as
// gortsplib's decoders behind recordable().
func FuzzVideoAssembler(f *testing.F) {
	for _, seed := range videoSeeds(f) {
		f.Add(seed)
	}
	f.Add([]byte{2, 2, 2, 10, 3, 0, 200, 4, 1, 30, 0, 3, 5, 7, 2, 8, 2, 0, 50, 4, 2, 10, 1, 1, 3})
	f.Add([]byte{3, 2, 2, 10, 3, 0, 200, 4, 0, 30, 0, 3, 5, 1, 2, 8, 2, 0, 50, 4, 2, 10, 1, 1, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		codec, pkts := splitFuzzInput(data)
		if len(data) > 0 && data[0]&2 != 0 {
			codec, pkts = scriptedPackets(data)
		}
		differential(t, codec, pkts)
	})
}

// BenchmarkVideoAssembler depacketizes 20 kB H.264 frames sent as FU-A
// packets of 1400 bytes; an op is one packet. "gortsplib" is today's path
// (pion Unmarshal of a fresh copy of the packet, as gortsplib's reader
// makes, then recordable()'s closure); "assembler" pushes from a reused
// buffer with a pool and an emit that gives the buffer back.
func BenchmarkVideoAssembler(b *testing.B) {
	pkts := fuStream(b, 20000, 1400, 50)
	b.Run("gortsplib", func(b *testing.B) {
		ref := newGortsplibPath(b, ringstore.CodecH264)
		b.ReportAllocs()
		b.SetBytes(int64(len(pkts[0])))
		for i := 0; i < b.N; i++ {
			p := &rtp.Packet{}
			if err := p.Unmarshal(bytes.Clone(pkts[i%len(pkts)])); err != nil {
				b.Fatal(err)
			}
			if _, err := ref.dec(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("assembler", func(b *testing.B) {
		pool := &framePool{}
		a := newVideoAssembler(ringstore.CodecH264, pool)
		emit := func(u unit) { pool.put(u.buf) }
		scratch := make([]byte, 0, 2048)
		b.ReportAllocs()
		b.SetBytes(int64(len(pkts[0])))
		for i := 0; i < b.N; i++ {
			scratch = append(scratch[:0], pkts[i%len(pkts)]...)
			if err := a.push(scratch, emit); err != nil {
				b.Fatal(err)
			}
		}
	})
}
