package recorder

import (
	"bytes"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

func testStreamMuxConfig() *mpeg4audio.StreamMuxConfig {
	return &mpeg4audio.StreamMuxConfig{
		Programs: []*mpeg4audio.StreamMuxConfigProgram{{
			Layers: []*mpeg4audio.StreamMuxConfigLayer{{
				AudioSpecificConfig: &mpeg4audio.AudioSpecificConfig{
					Type:         mpeg4audio.ObjectTypeAACLC,
					SampleRate:   48000,
					ChannelCount: 2,
				},
				LatmBufferFullness: 255,
			}},
		}},
	}
}

func testLATMElement(t testing.TB, aus ...[]byte) []byte {
	smc := testStreamMuxConfig()
	smc.NumSubFrames = uint(len(aus) - 1)
	e := mpeg4audio.AudioMuxElement{StreamMuxConfig: smc}
	for _, au := range aus {
		e.Payloads = append(e.Payloads, [][][]byte{{au}})
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLATMAccessUnits(t *testing.T) {
	one := []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c}
	two := []byte{0x21, 0x10, 0x05, 0x70}
	tests := []struct {
		name    string
		subs    int
		el      []byte
		want    [][]byte
		wantErr bool
	}{
		{"one access unit", 0, testLATMElement(t, one), [][]byte{one}, false},
		{"two subframes", 1, testLATMElement(t, one, two), [][]byte{one, two}, false},
		{"truncated", 0, testLATMElement(t, one)[:2], nil, true},
		{"empty", 0, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			smc := testStreamMuxConfig()
			smc.NumSubFrames = uint(tc.subs)
			got, err := latmAccessUnits(smc, tc.el)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d access units, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Fatalf("AU %d = %x, want %x", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestLATMConfig(t *testing.T) {
	smc := testStreamMuxConfig()
	if asc, _, ok := latmConfig(false, smc); !ok || asc.SampleRate != 48000 {
		t.Fatalf("config from SDP: ok=%v", ok)
	}
	if _, _, ok := latmConfig(true, smc); ok {
		t.Fatal("in-band StreamMuxConfig accepted")
	}
	if _, _, ok := latmConfig(false, nil); ok {
		t.Fatal("missing StreamMuxConfig accepted")
	}
	if aacSamplesPerFrame(false) != 1024 || aacSamplesPerFrame(true) != 960 {
		t.Fatal("AAC samples per frame")
	}
}

// FuzzLATM feeds camera bytes to the LATM AudioMuxElement decoder.
func FuzzLATM(f *testing.F) {
	f.Add(testLATMElement(f, []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c}), uint8(0))
	f.Add(testLATMElement(f, []byte{1}, []byte{2, 3}), uint8(1))
	f.Add([]byte{0xff, 0xff, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, el []byte, subs uint8) {
		smc := testStreamMuxConfig()
		smc.NumSubFrames = uint(subs % 8)
		aus, err := latmAccessUnits(smc, el)
		if err != nil {
			return
		}
		n := 0
		for _, au := range aus {
			if len(au) == 0 {
				t.Fatal("empty access unit returned")
			}
			n += len(au)
		}
		if n > len(el) {
			t.Fatalf("%d payload bytes from a %d-byte element", n, len(el))
		}
	})
}
