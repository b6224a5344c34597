package recorder

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// aacSamplesPerFrame is the number of samples in one AAC access unit.
func aacSamplesPerFrame(frameLengthFlag bool) uint32 {
	if frameLengthFlag {
		return 960
	}
	return 1024
}

// latmConfig returns the AudioSpecificConfig of a LATM stream whose
// StreamMuxConfig is in the SDP (cpresent=false). Streams that carry it
// in-band, or carry several programs or layers, are not recorded.
func latmConfig(cpresent bool, smc *mpeg4audio.StreamMuxConfig) (*mpeg4audio.AudioSpecificConfig, *mpeg4audio.StreamMuxConfig, bool) {
	if cpresent || smc == nil || len(smc.Programs) != 1 || len(smc.Programs[0].Layers) != 1 {
		return nil, nil, false
	}
	asc := smc.Programs[0].Layers[0].AudioSpecificConfig
	if asc == nil {
		return nil, nil, false
	}
	return asc, smc, true
}

// errLATM: an AudioMuxElement could not be decoded.
var errLATM = errors.New("invalid LATM AudioMuxElement")

// latmAccessUnits extracts the AAC access units of one AudioMuxElement
// (one per subframe) using the StreamMuxConfig from the SDP.
func latmAccessUnits(smc *mpeg4audio.StreamMuxConfig, el []byte) (aus [][]byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			aus, err = nil, fmt.Errorf("%w: decoder panicked: %v", errLATM, r)
		}
	}()
	e := mpeg4audio.AudioMuxElement{StreamMuxConfig: smc}
	if err := e.Unmarshal(el); err != nil {
		return nil, fmt.Errorf("%w: %w", errLATM, err)
	}
	for _, sub := range e.Payloads {
		if len(sub) == 0 || len(sub[0]) == 0 || len(sub[0][0]) == 0 {
			continue
		}
		aus = append(aus, sub[0][0])
	}
	return aus, nil
}
