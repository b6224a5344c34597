package camsim

import (
	"fmt"
)

// rtpTemplate is one pre-packetized RTP payload; the header (sequence
// number, timestamp, SSRC) is filled in per path when it is sent.
type rtpTemplate struct {
	payload []byte
	marker  bool
}

// videoFrame is one access unit, packetized.
type videoFrame struct {
	pkts []rtpTemplate
	key  bool
	size int // access unit bytes as the store keeps them: NAL units plus a 4-byte length each
}

// videoLoop is a clip packetized once, with filler for a target bitrate. It
// is read-only after build and shared by every path with the same clip and
// bitrate.
type videoLoop struct {
	clip   *videoClip
	frames []videoFrame
	// bitrate is the loop's mean video bitrate in bits/s, counted as size.
	bitrate int64
}

// audioLoop is an audio clip packetized once: one packet per access unit.
type audioLoop struct {
	clip *audioClip
	pkts []rtpTemplate
}

// Filler NAL unit headers: H.264 type 12, H.265 type 38 (FD_NUT, layer 0, TemporalId 0).
var (
	h264FillerHeader = []byte{12}
	h265FillerHeader = []byte{38 << 1, 1}
)

// avccOverhead is the per-NALU length prefix counted in frame sizes.
const avccOverhead = 4

// naturalBytes returns the clip's bytes per loop as sent without filler:
// access units plus in-band parameter sets before each keyframe.
func (c *videoClip) naturalBytes() int64 {
	var n int64
	for i, au := range c.aus {
		if c.keys[i] {
			for _, p := range c.params {
				n += int64(len(p) + avccOverhead)
			}
		}
		for _, nalu := range au {
			n += int64(len(nalu) + avccOverhead)
		}
	}
	return n
}

// naturalBitrate is the clip's own bitrate in bits/s at clipFrameRate.
func (c *videoClip) naturalBitrate() int64 {
	return c.naturalBytes() * 8 * clipFrameRate / int64(len(c.aus))
}

// fillerPerFrame returns the filler NAL unit length (header included, start
// code or length prefix excluded) to add to every frame to reach bitrate, 0
// for none.
func fillerPerFrame(c *videoClip, bitrate int64) (int, error) {
	if bitrate == 0 {
		return 0, nil
	}
	natural := c.naturalBitrate()
	if bitrate < natural {
		return 0, fmt.Errorf("%w: bitrate %d bit/s is below clip %s's own %d bit/s", ErrBadConfig, bitrate, c.name, natural)
	}
	perFrame := (bitrate - natural) / 8 / clipFrameRate
	n := int(perFrame) - avccOverhead
	if n < 4 {
		return 0, nil
	}
	return n, nil
}

// fillerNALU returns a filler NAL unit of exactly n bytes: header, 0xFF
// bytes, and the RBSP stop bit.
func fillerNALU(codec VideoCodec, n int) []byte {
	hdr := h264FillerHeader
	if codec == H265 {
		hdr = h265FillerHeader
	}
	b := make([]byte, n)
	copy(b, hdr)
	for i := len(hdr); i < n-1; i++ {
		b[i] = 0xff
	}
	b[n-1] = 0x80
	return b
}

// videoPacketizer turns one access unit into RTP payloads.
type videoPacketizer interface {
	packetize(au [][]byte) ([]rtpTemplate, error)
}

// buildVideoLoop packetizes every access unit of c, prefixed on keyframes by
// the parameter sets and followed by filler to reach bitrate (0: none).
func buildVideoLoop(c *videoClip, bitrate int64, pz videoPacketizer) (*videoLoop, error) {
	fill, err := fillerPerFrame(c, bitrate)
	if err != nil {
		return nil, err
	}
	var filler []byte
	if fill > 0 {
		filler = fillerNALU(c.codec, fill)
	}
	l := &videoLoop{clip: c, frames: make([]videoFrame, len(c.aus))}
	var total int64
	for i, au := range c.aus {
		nalus := make([][]byte, 0, len(c.params)+len(au)+1)
		if c.keys[i] {
			nalus = append(nalus, c.params...)
		}
		nalus = append(nalus, au...)
		if filler != nil {
			nalus = append(nalus, filler)
		}
		pkts, err := pz.packetize(nalus)
		if err != nil {
			return nil, fmt.Errorf("camsim: packetize %s frame %d: %w", c.name, i, err)
		}
		size := 0
		for _, n := range nalus {
			size += len(n) + avccOverhead
		}
		l.frames[i] = videoFrame{pkts: pkts, key: c.keys[i], size: size}
		total += int64(size)
	}
	l.bitrate = total * 8 * clipFrameRate / int64(len(c.aus))
	return l, nil
}
