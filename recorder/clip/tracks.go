package clip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nvrfw/nvr/ringstore"
)

// paramSets are a video track's parameter sets, by kind.
type paramSets struct {
	vps, sps, pps []byte
}

func (p paramSets) complete(c ringstore.Codec) bool {
	if c == ringstore.CodecH265 && len(p.vps) == 0 {
		return false
	}
	return len(p.sps) > 0 && len(p.pps) > 0
}

// classify files one parameter-set NALU into p (the first of each kind
// wins) and reports whether nalu was a parameter set.
func (p *paramSets) classify(c ringstore.Codec, nalu []byte) bool {
	if len(nalu) == 0 {
		return false
	}
	var slot *[]byte
	switch c {
	case ringstore.CodecH264:
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			slot = &p.sps
		case h264.NALUTypePPS:
			slot = &p.pps
		}
	case ringstore.CodecH265:
		if len(nalu) < 2 {
			return false
		}
		switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			slot = &p.vps
		case h265.NALUType_SPS_NUT:
			slot = &p.sps
		case h265.NALUType_PPS_NUT:
			slot = &p.pps
		}
	}
	if slot == nil {
		return false
	}
	if *slot == nil {
		*slot = bytes.Clone(nalu)
	}
	return true
}

// configParams sorts a Track.Config into parameter sets.
func configParams(t ringstore.Track) paramSets {
	var p paramSets
	for _, n := range t.Config {
		p.classify(t.Codec, n)
	}
	return p
}

// errBadAVCC: an access unit is not a sequence of length-prefixed NALUs.
var errBadAVCC = errors.New("access unit is not AVCC (4-byte length-prefixed NALUs)")

// inbandParams collects the parameter sets carried inside an AVCC access
// unit (outside bytes: it must not panic on any input).
func inbandParams(c ringstore.Codec, au []byte) (paramSets, error) {
	var p paramSets
	for len(au) > 0 {
		if len(au) < 4 {
			return p, errBadAVCC
		}
		n := binary.BigEndian.Uint32(au)
		au = au[4:]
		if uint64(n) > uint64(len(au)) {
			return p, errBadAVCC
		}
		p.classify(c, au[:n])
		au = au[n:]
	}
	return p, nil
}

// sameParams reports whether a and b are the same parameter sets.
func sameParams(a, b paramSets) bool {
	return bytes.Equal(a.vps, b.vps) && bytes.Equal(a.sps, b.sps) && bytes.Equal(a.pps, b.pps)
}

// changedParams reports whether b holds a parameter set of a kind a also
// holds, with different bytes.
func changedParams(a, b paramSets) bool {
	differ := func(x, y []byte) bool { return len(x) > 0 && len(y) > 0 && !bytes.Equal(x, y) }
	return differ(a.vps, b.vps) || differ(a.sps, b.sps) || differ(a.pps, b.pps)
}

// defaultAudioRate is the timescale of an audio track whose ClockRate and
// configuration say nothing.
const defaultAudioRate = 8000

// trackCodec maps a store track to its MP4 sample entry and timescale.
// params are the video parameter sets to use (from Config or in-band).
// An error means the track cannot be exported; its text is the reason.
func trackCodec(t ringstore.Track, params paramSets) (mp4.Codec, uint32, error) {
	switch t.Codec {
	case ringstore.CodecH264:
		if !params.complete(t.Codec) {
			return nil, 0, errors.New("no H.264 SPS/PPS in the track configuration or in-band")
		}
		var sps h264.SPS
		if err := sps.Unmarshal(params.sps); err != nil {
			return nil, 0, fmt.Errorf("parse H.264 SPS: %w", err)
		}
		return &mp4.CodecH264{SPS: params.sps, PPS: params.pps}, videoRate(t), nil
	case ringstore.CodecH265:
		if !params.complete(t.Codec) {
			return nil, 0, errors.New("no H.265 VPS/SPS/PPS in the track configuration or in-band")
		}
		var sps h265.SPS
		if len(params.sps) < 13 {
			return nil, 0, errors.New("parse H.265 SPS: too short")
		}
		if err := sps.Unmarshal(params.sps); err != nil {
			return nil, 0, fmt.Errorf("parse H.265 SPS: %w", err)
		}
		return &mp4.CodecH265{VPS: params.vps, SPS: params.sps, PPS: params.pps}, videoRate(t), nil
	case ringstore.CodecAAC:
		if len(t.Config) == 0 {
			return nil, 0, errors.New("no AAC AudioSpecificConfig")
		}
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(t.Config[0]); err != nil {
			return nil, 0, fmt.Errorf("parse AAC AudioSpecificConfig: %w", err)
		}
		rate := t.ClockRate
		if rate == 0 {
			rate = uint32(asc.SampleRate)
		}
		if rate == 0 {
			rate = defaultAudioRate
		}
		return &mp4.CodecMPEG4Audio{Config: asc}, rate, nil
	case ringstore.CodecOpus:
		ch := int(t.Channels)
		if ch == 0 {
			ch = 2
		}
		return &mp4.CodecOpus{ChannelCount: ch}, 48000, nil
	}
	if err := exportable(t.Codec); err != nil {
		return nil, 0, err
	}
	return nil, 0, fmt.Errorf("codec %v cannot be exported to MP4", t.Codec)
}

func videoRate(t ringstore.Track) uint32 {
	if t.ClockRate != 0 {
		return t.ClockRate
	}
	return 90000
}

// sameTrack reports whether b continues a without a change of codec
// parameters that would need a new MP4 sample description.
func sameTrack(a, b ringstore.Track) bool {
	if a.Codec != b.Codec || a.ClockRate != b.ClockRate || a.Channels != b.Channels || len(a.Config) != len(b.Config) {
		return false
	}
	for i := range a.Config {
		if !bytes.Equal(a.Config[i], b.Config[i]) {
			return false
		}
	}
	return true
}

// exportable says why a codec can never be exported (nil when it can).
func exportable(c ringstore.Codec) error {
	switch c {
	case ringstore.CodecH264, ringstore.CodecH265, ringstore.CodecAAC, ringstore.CodecOpus:
		return nil
	case ringstore.CodecPCMU, ringstore.CodecPCMA:
		return errG711
	}
	return fmt.Errorf("codec %v cannot be exported to MP4", c)
}

// errG711 is why G.711 tracks are omitted.
var errG711 = errors.New("G.711 has no MP4 sample entry that the muxer and common players support (ulaw/alaw are QuickTime-only); omitted, not transcoded")
