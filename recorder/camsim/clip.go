package camsim

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// VideoCodec names a path's video encoding.
type VideoCodec string

// Video codecs the simulator serves.
const (
	H264 VideoCodec = "h264"
	H265 VideoCodec = "h265"
)

// AudioCodec names a path's audio encoding.
type AudioCodec string

// Audio codecs the simulator serves.
const (
	AudioNone AudioCodec = "none"
	AAC       AudioCodec = "aac"  // MPEG-4 AAC-LC from the clip aac.aac, RFC 3640 AAC-hbr
	PCMU      AudioCodec = "pcmu" // G.711 mu-law 8 kHz mono, a synthesized 400 Hz tone
)

// ErrBadClip is wrapped by every error about a clip's bytes.
var ErrBadClip = errors.New("camsim: bad clip")

// clipFrameRate is the frame rate of every committed clip (make.sh).
const clipFrameRate = 25

// videoClip is a video elementary stream split into access units, with its
// parameter sets taken out of the access units.
type videoClip struct {
	name   string
	codec  VideoCodec
	params [][]byte   // H.264: SPS, PPS; H.265: VPS, SPS, PPS
	aus    [][][]byte // access units without AUDs, parameter sets or filler
	keys   []bool     // keys[i]: aus[i] is a random-access point
}

// Clip file names under the clip directory (testdata/clips).
var (
	videoClipFiles = map[VideoCodec][2]string{
		H264: {"h264.h264", "h264_alt.h264"},
		H265: {"h265.h265", "h265_alt.h265"},
	}
	aacClipFile = "aac.aac"
)

// findClipDir returns dir when set, else the nearest testdata/clips found
// walking up from the working directory.
func findClipDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("camsim: find clip directory: %w", err)
	}
	for d := wd; ; {
		c := filepath.Join(d, "testdata", "clips")
		if st, err := os.Stat(filepath.Join(c, videoClipFiles[H264][0])); err == nil && !st.IsDir() {
			return c, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%w: no testdata/clips directory at or above %s: give the clip directory (Options.ClipDir, nvrd camsim --clips)", ErrBadConfig, wd)
		}
		d = parent
	}
}

// loadVideoClip reads and parses a clip file.
func loadVideoClip(dir, file string, codec VideoCodec) (*videoClip, error) {
	buf, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, fmt.Errorf("camsim: read clip: %w", err)
	}
	c, err := parseVideoClip(buf, codec)
	if err != nil {
		return nil, fmt.Errorf("clip %s: %w", file, err)
	}
	c.name = file
	return c, nil
}

// parseVideoClip splits an Annex-B elementary stream into access units. The
// stream must have exactly one set of parameter sets (repeats are allowed),
// start with a keyframe and hold no B-frames (the simulator sends frames in
// file order at a fixed rate).
func parseVideoClip(buf []byte, codec VideoCodec) (*videoClip, error) {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(buf); err != nil {
		return nil, fmt.Errorf("%w: annex-b: %w", ErrBadClip, err)
	}
	c := &videoClip{codec: codec}
	var params [3][]byte // by role: VPS, SPS, PPS
	var au [][]byte
	auHasVCL := false
	flush := func() {
		if len(au) > 0 && auHasVCL {
			c.aus = append(c.aus, au)
		}
		au, auHasVCL = nil, false
	}
	for _, n := range nalus {
		k, err := classifyNALU(codec, n)
		if err != nil {
			return nil, err
		}
		switch k.role {
		case roleDrop:
			continue
		case roleParam:
			if params[k.param] != nil && string(params[k.param]) != string(n) {
				return nil, fmt.Errorf("%w: parameter sets change within the clip", ErrBadClip)
			}
			params[k.param] = n
			if auHasVCL {
				flush()
			}
			continue
		}
		if auHasVCL && (k.role == roleAUStart || k.firstSlice) {
			flush()
		}
		au = append(au, n)
		if k.role == roleVCL {
			auHasVCL = true
		}
	}
	flush()
	if len(c.aus) == 0 {
		return nil, fmt.Errorf("%w: no pictures", ErrBadClip)
	}
	switch codec {
	case H264:
		if params[1] == nil || params[2] == nil {
			return nil, fmt.Errorf("%w: missing SPS or PPS", ErrBadClip)
		}
		c.params = [][]byte{params[1], params[2]}
	default:
		if params[0] == nil || params[1] == nil || params[2] == nil {
			return nil, fmt.Errorf("%w: missing VPS, SPS or PPS", ErrBadClip)
		}
		c.params = [][]byte{params[0], params[1], params[2]}
	}
	c.keys = make([]bool, len(c.aus))
	for i, au := range c.aus {
		if codec == H264 {
			c.keys[i] = h264.IsRandomAccess(au)
		} else {
			c.keys[i] = h265.IsRandomAccess(au)
		}
	}
	if !c.keys[0] {
		return nil, fmt.Errorf("%w: first picture is not a keyframe", ErrBadClip)
	}
	return c, nil
}

type naluRole uint8

const (
	roleOther   naluRole = iota // non-VCL that stays in the current access unit
	roleVCL                     // a slice
	roleAUStart                 // non-VCL that can only open an access unit
	roleParam                   // parameter set, kept out of the access units
	roleDrop                    // AUD, filler: dropped (re-added as needed)
)

type naluKind struct {
	role       naluRole
	param      int  // for roleParam: 0 VPS, 1 SPS, 2 PPS
	firstSlice bool // a VCL NALU that starts a new picture
}

// classifyNALU says where a NALU belongs when splitting access units
// (H.264 7.4.1.2.3, H.265 7.4.2.4.4).
func classifyNALU(codec VideoCodec, n []byte) (naluKind, error) {
	if codec == H264 {
		if len(n) < 1 {
			return naluKind{}, fmt.Errorf("%w: empty NAL unit", ErrBadClip)
		}
		switch t := h264.NALUType(n[0] & 0x1f); {
		case t >= 1 && t <= 5:
			return naluKind{role: roleVCL, firstSlice: len(n) > 1 && n[1]&0x80 != 0}, nil
		case t == h264.NALUTypeSPS:
			return naluKind{role: roleParam, param: 1}, nil
		case t == h264.NALUTypePPS:
			return naluKind{role: roleParam, param: 2}, nil
		case t == h264.NALUTypeAccessUnitDelimiter, t == h264.NALUTypeFillerData:
			return naluKind{role: roleDrop}, nil
		case t == h264.NALUTypeSEI, t >= 14 && t <= 18:
			return naluKind{role: roleAUStart}, nil
		case t == 0 || t >= 24:
			return naluKind{}, fmt.Errorf("%w: NAL unit type %d in a byte stream", ErrBadClip, t)
		}
		return naluKind{role: roleOther}, nil
	}
	if len(n) < 2 {
		return naluKind{}, fmt.Errorf("%w: short NAL unit", ErrBadClip)
	}
	switch t := h265.NALUType((n[0] >> 1) & 0x3f); {
	case t <= 31:
		return naluKind{role: roleVCL, firstSlice: len(n) > 2 && n[2]&0x80 != 0}, nil
	case t == h265.NALUType_VPS_NUT:
		return naluKind{role: roleParam, param: 0}, nil
	case t == h265.NALUType_SPS_NUT:
		return naluKind{role: roleParam, param: 1}, nil
	case t == h265.NALUType_PPS_NUT:
		return naluKind{role: roleParam, param: 2}, nil
	case t == h265.NALUType_AUD_NUT, t == h265.NALUType_FD_NUT:
		return naluKind{role: roleDrop}, nil
	case t == h265.NALUType_PREFIX_SEI_NUT, t >= 41 && t <= 44, t >= 48:
		if t >= 48 {
			return naluKind{}, fmt.Errorf("%w: NAL unit type %d in a byte stream", ErrBadClip, t)
		}
		return naluKind{role: roleAUStart}, nil
	}
	return naluKind{role: roleOther}, nil
}

// audioClip is a loop of audio access units of equal duration.
type audioClip struct {
	codec      AudioCodec
	sampleRate int
	channels   int
	samples    int      // samples per access unit
	aus        [][]byte // one access unit each
	config     *mpeg4audio.AudioSpecificConfig
}

// loadAACClip reads and parses an ADTS AAC file.
func loadAACClip(dir string) (*audioClip, error) {
	buf, err := os.ReadFile(filepath.Join(dir, aacClipFile))
	if err != nil {
		return nil, fmt.Errorf("camsim: read clip: %w", err)
	}
	c, err := parseAACClip(buf)
	if err != nil {
		return nil, fmt.Errorf("clip %s: %w", aacClipFile, err)
	}
	return c, nil
}

// parseAACClip parses an ADTS stream whose frames all share one
// configuration.
func parseAACClip(buf []byte) (*audioClip, error) {
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(buf); err != nil {
		return nil, fmt.Errorf("%w: adts: %w", ErrBadClip, err)
	}
	if len(pkts) == 0 {
		return nil, fmt.Errorf("%w: no AAC frames", ErrBadClip)
	}
	first := pkts[0]
	c := &audioClip{
		codec:      AAC,
		sampleRate: first.SampleRate,
		channels:   first.ChannelCount,
		samples:    mpeg4audio.SamplesPerAccessUnit,
		config: &mpeg4audio.AudioSpecificConfig{
			Type:         first.Type,
			SampleRate:   first.SampleRate,
			ChannelCount: first.ChannelCount,
		},
	}
	for _, p := range pkts {
		if p.Type != first.Type || p.SampleRate != first.SampleRate || p.ChannelCount != first.ChannelCount {
			return nil, fmt.Errorf("%w: AAC configuration changes within the clip", ErrBadClip)
		}
		c.aus = append(c.aus, p.AU)
	}
	return c, nil
}

// Parameters of the synthesized G.711 tone.
const (
	pcmuRate      = 8000
	pcmuPacket    = 160 // samples per RTP packet: 20 ms
	pcmuToneHz    = 400 // 20 samples per period: a 160-sample packet holds 8 whole periods
	pcmuAmplitude = 8000
)

// pcmuClip synthesizes one 20 ms packet of a G.711 mu-law tone; repeating it
// is seamless because it holds whole periods.
func pcmuClip() (*audioClip, error) {
	lpcm := make(g711.Mulaw, 2*pcmuPacket)
	for i := range pcmuPacket {
		v := int16(pcmuAmplitude * math.Sin(2*math.Pi*pcmuToneHz*float64(i)/pcmuRate))
		lpcm[2*i] = byte(uint16(v) >> 8)
		lpcm[2*i+1] = byte(uint16(v))
	}
	enc, err := lpcm.Marshal()
	if err != nil {
		return nil, fmt.Errorf("camsim: encode G.711 tone: %w", err)
	}
	return &audioClip{codec: PCMU, sampleRate: pcmuRate, channels: 1, samples: pcmuPacket, aus: [][]byte{enc}}, nil
}
