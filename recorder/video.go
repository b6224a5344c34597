package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/nvrfw/nvr/ringstore"
)

// Limits on what a camera may send in one access unit; beyond them the unit
// is rejected as malformed rather than stored.
const (
	maxAccessUnitSize = 8 << 20
	// maxNALUsPerAU is what readers of the store accept (mediacommon's AVCC
	// decoder), parameter sets put in front of keyframes included.
	maxNALUsPerAU = h264.MaxNALUsPerAccessUnit
)

// errNoParams: a keyframe arrived before the codec's parameter sets were
// known (neither in the SDP nor in-band); it cannot be recorded decodably.
var errNoParams = errors.New("keyframe without known parameter sets")

// errMalformedAU: the access unit is empty, too large, or has too many NALUs.
var errMalformedAU = errors.New("malformed access unit")

// paramSets holds a video codec's parameter sets (vps only for H.265).
type paramSets struct {
	vps, sps, pps []byte
}

func (p paramSets) complete(c ringstore.Codec) bool {
	if c == ringstore.CodecH265 && len(p.vps) == 0 {
		return false
	}
	return len(p.sps) > 0 && len(p.pps) > 0
}

func (p paramSets) equal(q paramSets) bool {
	return bytes.Equal(p.vps, q.vps) && bytes.Equal(p.sps, q.sps) && bytes.Equal(p.pps, q.pps)
}

// config returns the parameter sets in Track.Config order.
func (p paramSets) config(c ringstore.Codec) [][]byte {
	if c == ringstore.CodecH265 {
		return [][]byte{clone(p.vps), clone(p.sps), clone(p.pps)}
	}
	return [][]byte{clone(p.sps), clone(p.pps)}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// naluKind classifies a NALU for recording.
type naluKind uint8

const (
	naluOther naluKind = iota // SEI, AUD, ...: kept, not a picture
	naluVCL                   // a coded slice of a non-key picture
	naluKey                   // a coded slice of an IDR/IRAP picture
	naluVPS
	naluSPS
	naluPPS
)

func classify(c ringstore.Codec, nalu []byte) naluKind {
	if c == ringstore.CodecH265 {
		if len(nalu) < 2 {
			return naluOther
		}
		switch t := h265.NALUType((nalu[0] >> 1) & 0x3f); {
		case t >= h265.NALUType_BLA_W_LP && t <= h265.NALUType_CRA_NUT:
			return naluKey
		case t <= h265.NALUType_RSV_IRAP_VCL23:
			return naluVCL
		case t == h265.NALUType_VPS_NUT:
			return naluVPS
		case t == h265.NALUType_SPS_NUT:
			return naluSPS
		case t == h265.NALUType_PPS_NUT:
			return naluPPS
		}
		return naluOther
	}
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeIDR:
		return naluKey
	case h264.NALUTypeNonIDR, h264.NALUTypeDataPartitionA:
		return naluVCL
	case h264.NALUTypeSPS:
		return naluSPS
	case h264.NALUTypePPS:
		return naluPPS
	}
	return naluOther
}

// videoFormat is what the SPS says about the picture.
type videoFormat struct {
	width, height int
	fps           float64
	// noReorder: the SPS says pictures are never reordered (H.264 POC type
	// 2, max_num_reorder_frames 0, or Baseline; H.265 every
	// sps_max_num_reorder_pics 0), so decoding time is presentation time.
	noReorder bool
}

// videoTrack turns one H.264/H.265 track's depacketized access units into
// store frames: it follows parameter sets (SDP and in-band), detects
// keyframes, makes every keyframe carry its parameter sets in-band, computes
// decoding times (B-frames) and frames the NALUs as AVCC. It is not safe for
// concurrent use.
type videoTrack struct {
	codec     ringstore.Codec
	latest    paramSets // most recent parameter sets seen
	committed paramSets // the ones in the store's track table
	format    videoFormat

	h264dts    h264.DTSExtractor
	h265dts    h265.DTSExtractor
	dtsPrimed  bool // the DTS extractor has seen a keyframe since its reset
	dtsBroken  bool // the extractor failed: DTS = PTS until the next keyframe
	dtsFailure int  // count of extractor failures
}

func newVideoTrack(c ringstore.Codec, sdp paramSets) *videoTrack {
	v := &videoTrack{codec: c}
	v.resetDTS()
	v.learn(sdp)
	return v
}

func (v *videoTrack) resetDTS() {
	v.h264dts = h264.DTSExtractor{}
	v.h264dts.Initialize()
	v.h265dts = h265.DTSExtractor{}
	v.h265dts.Initialize()
	v.dtsPrimed = false
}

// learn records parameter sets that are present.
func (v *videoTrack) learn(p paramSets) {
	if len(p.vps) > 0 {
		v.latest.vps = clone(p.vps)
	}
	if len(p.sps) > 0 && !bytes.Equal(p.sps, v.latest.sps) {
		v.latest.sps = clone(p.sps)
		// An SPS mediacommon cannot parse keeps the last good format: a
		// zero format would also lose noReorder and let the DTS extractor
		// guess offsets for a stream that never reorders.
		if f := parseSPS(v.codec, p.sps); f.width > 0 {
			v.format = f
		}
	}
	if len(p.pps) > 0 {
		v.latest.pps = clone(p.pps)
	}
}

func parseSPS(c ringstore.Codec, sps []byte) videoFormat {
	var f videoFormat
	defer func() {
		if recover() != nil {
			f = videoFormat{}
		}
	}()
	if c == ringstore.CodecH265 {
		var s h265.SPS
		if s.Unmarshal(sps) == nil {
			f = videoFormat{width: s.Width(), height: s.Height(), fps: s.FPS(), noReorder: len(s.MaxNumReorderPics) > 0}
			for _, n := range s.MaxNumReorderPics {
				f.noReorder = f.noReorder && n == 0
			}
		}
		return f
	}
	var s h264.SPS
	if s.Unmarshal(sps) == nil {
		f = videoFormat{width: s.Width(), height: s.Height(), fps: s.FPS()}
		f.noReorder = s.PicOrderCntType == 2 || s.ProfileIdc == 66 ||
			(s.VUI != nil && s.VUI.BitstreamRestriction != nil && s.VUI.BitstreamRestriction.MaxNumReorderFrames == 0)
	}
	return f
}

// videoAU is an access unit ready for the store.
type videoAU struct {
	nalus [][]byte // with parameter sets in front of keyframes
	key   bool
	// config is set on a keyframe whose parameter sets differ from the
	// committed ones: the caller must SetTracks with it, then commit().
	config [][]byte
}

// prepare inspects one access unit. It returns ok=false (and no error) for
// units that carry no picture (parameter sets or SEI alone); their parameter
// sets are remembered for the next keyframe.
func (v *videoTrack) prepare(nalus [][]byte) (au videoAU, ok bool, err error) {
	if len(nalus) == 0 || len(nalus) > 4*maxNALUsPerAU {
		return au, false, fmt.Errorf("%w: %d NALUs", errMalformedAU, len(nalus))
	}
	size := 0
	var inband paramSets
	kept := make([][]byte, 0, len(nalus)+3)
	hasVCL := false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		size += len(n)
		switch classify(v.codec, n) {
		case naluKey:
			au.key = true
			hasVCL = true
		case naluVCL:
			hasVCL = true
		case naluVPS, naluSPS, naluPPS:
			// Parameter sets outlive the unit (the DTS extractor keeps
			// the SPS it parsed, to compare): copy them out of its
			// buffer, which is reused for later units.
			n = clone(n)
			switch classify(v.codec, n) {
			case naluVPS:
				inband.vps = n
			case naluSPS:
				inband.sps = n
			default:
				inband.pps = n
			}
		}
		kept = append(kept, n)
	}
	if size == 0 || size > maxAccessUnitSize {
		return videoAU{}, false, fmt.Errorf("%w: %d bytes", errMalformedAU, size)
	}
	v.learn(inband)
	if !hasVCL {
		return videoAU{}, false, nil
	}
	if !au.key {
		au.nalus, err = v.fit(kept)
		return au, err == nil, err
	}
	if !v.latest.complete(v.codec) {
		return videoAU{}, false, errNoParams
	}
	// Put the parameter sets in force in front of the keyframe when the
	// camera did not send them in-band, so every keyframe is self-contained.
	var front [][]byte
	if v.codec == ringstore.CodecH265 && inband.vps == nil {
		front = append(front, v.latest.vps)
	}
	if inband.sps == nil {
		front = append(front, v.latest.sps)
	}
	if inband.pps == nil {
		front = append(front, v.latest.pps)
	}
	if au.nalus, err = v.fit(append(front, kept...)); err != nil {
		return videoAU{}, false, err
	}
	if !v.latest.equal(v.committed) {
		au.config = v.latest.config(v.codec)
	}
	return au, true, nil
}

// fit keeps an access unit within maxNALUsPerAU NALUs by dropping those
// that carry no picture or parameter set (SEI, delimiters, filler) when it
// has too many; it fails when that is not enough.
func (v *videoTrack) fit(nalus [][]byte) ([][]byte, error) {
	if len(nalus) <= maxNALUsPerAU {
		return nalus, nil
	}
	out := nalus[:0:0]
	for _, n := range nalus {
		if classify(v.codec, n) != naluOther {
			out = append(out, n)
		}
	}
	if len(out) > maxNALUsPerAU {
		return nil, fmt.Errorf("%w: %d NALUs (at most %d)", errMalformedAU, len(out), maxNALUsPerAU)
	}
	return out, nil
}

// commit records that the store's track table now holds the latest
// parameter sets.
func (v *videoTrack) commit() {
	v.committed = paramSets{vps: clone(v.latest.vps), sps: clone(v.latest.sps), pps: clone(v.latest.pps)}
}

// dts returns the decoding tick of a prepared access unit with presentation
// tick pts. Extractor failures (unusual streams, corrupt slices) fall back to
// DTS = PTS until the next keyframe.
func (v *videoTrack) dts(au videoAU, pts int64) (dts int64) {
	if v.format.noReorder {
		// Without reordering decoding time is presentation time; the
		// extractor would only guess, and at a timestamp seam (a camera's
		// clock reset, a looping source) it guesses a bogus offset.
		return pts
	}
	if au.key {
		if v.dtsBroken {
			v.resetDTS()
			v.dtsBroken = false
		}
		v.dtsPrimed = true
	}
	if !v.dtsPrimed || v.dtsBroken {
		return pts
	}
	defer func() {
		if recover() != nil {
			v.dtsBroken = true
			v.dtsFailure++
			dts = pts
		}
	}()
	var err error
	if v.codec == ringstore.CodecH265 {
		dts, err = v.h265dts.Extract(au.nalus, pts)
	} else {
		dts, err = v.h264dts.Extract(au.nalus, pts)
	}
	if err != nil || dts > pts {
		v.dtsBroken = true
		v.dtsFailure++
		return pts
	}
	return dts
}

// avcc frames NALUs as AVCC: each prefixed by its 4-byte big-endian length.
func avcc(nalus [][]byte) []byte { return appendAVCC(nil, nalus) }

// appendAVCC appends nalus to dst as AVCC (a 4-byte big-endian length
// before each NALU), growing dst at most once.
func appendAVCC(dst []byte, nalus [][]byte) []byte {
	n := len(dst)
	for _, u := range nalus {
		n += 4 + len(u)
	}
	if n > cap(dst) {
		dst = append(make([]byte, 0, n), dst...)
	}
	for _, u := range nalus {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(u)))
		dst = append(dst, u...)
	}
	return dst
}
