package recorder

// Tests of the gortsplib seam (rtsp.go): like rtsp.go, the only test file
// importing gortsplib.

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/nvrfw/nvr/ringstore"
)

// encodeFor packetizes access units with the format's own encoder.
func encodeFor(t testing.TB, f format.Format, aus [][][]byte) []*rtp.Packet {
	t.Helper()
	var pkts []*rtp.Packet
	add := func(p []*rtp.Packet, err error) {
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p...)
	}
	for i, au := range aus {
		switch f := f.(type) {
		case *format.H264:
			e, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			add(e.Encode(au))
		case *format.H265:
			e, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			add(e.Encode(au))
		case *format.MPEG4Audio:
			e, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			add(e.Encode(au))
		case *format.MPEG4AudioLATM:
			e, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			el := mpeg4audio.AudioMuxElement{StreamMuxConfig: f.StreamMuxConfig, Payloads: [][][][]byte{{{au[0]}}}}
			b, err := el.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			add(e.Encode(b))
		case *format.G711:
			e, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			add(e.Encode(au[0]))
		case *format.Opus:
			e, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.Encode(au[0])
			add([]*rtp.Packet{p}, err)
		}
		for _, p := range pkts[len(pkts)-1:] {
			p.Timestamp = uint32(1000 * (i + 1))
		}
	}
	return pkts
}

func TestRecordable(t *testing.T) {
	aac := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}
	big := bytes.Repeat([]byte{0x41, 0x9a}, 3000) // fragmented over several packets
	big[0] = 0x41
	tests := []struct {
		name     string
		f        format.Format
		codec    ringstore.Codec
		rate     int
		channels int
		aus      [][][]byte
	}{
		{"H.264", &format.H264{PayloadTyp: 96, SPS: testSPS1080, PPS: testPPS, PacketizationMode: 1}, ringstore.CodecH264, 90000, 0,
			[][][]byte{{testSPS1080, testPPS, testIDR}, {big}}},
		{"H.265", &format.H265{PayloadTyp: 96, VPS: testVPS265, SPS: testSPS265, PPS: testPPS265}, ringstore.CodecH265, 90000, 0,
			[][][]byte{{testIDR265}, {testTRAIL265}}},
		{"AAC", &format.MPEG4Audio{PayloadTyp: 97, Config: aac, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}, ringstore.CodecAAC, 48000, 2,
			[][][]byte{{{1, 2, 3}, {4, 5}}}},
		{"AAC LATM", &format.MPEG4AudioLATM{PayloadTyp: 97, StreamMuxConfig: testStreamMuxConfig()}, ringstore.CodecAAC, 48000, 2,
			[][][]byte{{{0x21, 0x10, 0x04}}, {{0x21, 0x10, 0x05}}}},
		{"G.711 mu-law", &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}, ringstore.CodecPCMU, 8000, 1,
			[][][]byte{{bytes.Repeat([]byte{0x7f}, 160)}}},
		{"G.711 A-law", &format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1}, ringstore.CodecPCMA, 8000, 1,
			[][][]byte{{bytes.Repeat([]byte{0xd5}, 160)}}},
		{"Opus", &format.Opus{PayloadTyp: 111, ChannelCount: 2}, ringstore.CodecOpus, 48000, 2,
			[][][]byte{{{0xfc, 0xff, 0xfe}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, dec, ok := recordable(tc.f)
			if !ok {
				t.Fatal("not recordable")
			}
			if info.codec != tc.codec || info.clockRate != tc.rate || info.channels != tc.channels {
				t.Fatalf("info %+v", info)
			}
			if tc.codec == ringstore.CodecAAC && len(info.config) == 0 {
				t.Fatal("AAC without AudioSpecificConfig")
			}
			var got [][]byte
			for _, p := range encodeFor(t, tc.f, tc.aus) {
				units, err := dec(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range units {
					if tc.codec.IsVideo() {
						got = append(got, avcc(u.nalus))
					} else {
						got = append(got, u.data)
					}
				}
			}
			var want [][]byte
			for _, au := range tc.aus {
				if tc.codec.IsVideo() {
					want = append(want, avcc(au))
				} else {
					want = append(want, au...)
				}
			}
			if !equalNALUs(got, want) {
				t.Fatalf("units %x, want %x", got, want)
			}
		})
	}
	if _, _, ok := recordable(&format.MJPEG{}); ok {
		t.Error("MJPEG recordable")
	}
	if _, _, ok := recordable(&format.MPEG4AudioLATM{PayloadTyp: 97, CPresent: true}); ok {
		t.Error("LATM with in-band StreamMuxConfig recordable")
	}
}

func TestAudioUnitsSpreadOverFrames(t *testing.T) {
	units := audioUnits(4294966000, 1024, [][]byte{{1}, {2}, {3}})
	want := []uint32{4294966000, 4294967024, 752}
	for i, u := range units {
		if u.ts != want[i] {
			t.Errorf("unit %d ts %d, want %d", i, u.ts, want[i])
		}
	}
}

// FuzzDepacketize feeds arbitrary RTP payloads to every depacketizer the
// recorder uses. The packet handler recovers from panics, but they should
// not happen; errors are fine.
func FuzzDepacketize(f *testing.F) {
	f.Add([]byte{0x7c, 0x85, 0x01, 0x02}, uint8(0), true)       // FU-A start
	f.Add([]byte{0x18, 0x00, 0x02, 0x67, 0x42}, uint8(0), true) // STAP-A
	f.Add([]byte{0x62, 0x01, 0x93, 0xaf}, uint8(1), true)       // H.265 FU
	f.Add([]byte{0x00, 0x10, 0x00, 0x18, 0xaa, 0xbb, 0xcc}, uint8(2), true)
	f.Add([]byte{0x20, 0x00, 0x10}, uint8(3), true)
	f.Add([]byte{0xfc}, uint8(5), false)
	formats := func() []format.Format {
		return []format.Format{
			&format.H264{PayloadTyp: 96, PacketizationMode: 1},
			&format.H265{PayloadTyp: 96},
			&format.MPEG4Audio{PayloadTyp: 97, Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelCount: 1}, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
			&format.MPEG4AudioLATM{PayloadTyp: 97, StreamMuxConfig: testStreamMuxConfig()},
			&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1},
			&format.Opus{PayloadTyp: 111, ChannelCount: 2},
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, which uint8, marker bool) {
		fs := formats()
		fm := fs[int(which)%len(fs)]
		_, dec, ok := recordable(fm)
		if !ok {
			t.Fatal("not recordable")
		}
		for i := range 3 { // the same payload as a start, middle and end
			p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker || i == 2, SequenceNumber: uint16(i), Timestamp: 90000}, Payload: payload}
			units, err := dec(p)
			if err != nil {
				continue
			}
			for _, u := range units {
				if fm.(interface{ ClockRate() int }).ClockRate() == 90000 && u.nalus == nil && u.data == nil {
					t.Fatal("empty unit")
				}
			}
		}
	})
}

// TestVideoWithoutMarker: cameras that never set the RTP marker bit have
// their access units split by timestamp, each with its own timestamp and
// NALUs.
func TestVideoWithoutMarker(t *testing.T) {
	big264 := append([]byte{0x41}, bytes.Repeat([]byte{0x9a}, 3000)...)
	big265 := append([]byte{0x02, 0x01}, bytes.Repeat([]byte{0x9a}, 3000)...)
	tests := []struct {
		name  string
		f     func() format.Format
		aus   [][][]byte
		sizes string
	}{
		{"H.264", func() format.Format { return &format.H264{PayloadTyp: 96, PacketizationMode: 1} },
			[][][]byte{{testSPS1080, testPPS, testIDR}, {testP}, {big264}, {testP}}, "[3 1 1]"},
		{"H.265", func() format.Format { return &format.H265{PayloadTyp: 96} },
			[][][]byte{{testVPS265, testSPS265, testPPS265, testIDR265}, {testTRAIL265}, {big265}, {testTRAIL265}}, "[4 1 1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, dec, ok := recordable(tc.f())
			if !ok {
				t.Fatal("not recordable")
			}
			var got []uint32
			var sizes []int
			seq := uint16(0)
			for i, au := range tc.aus {
				ts := uint32(1000 + i*3600)
				for _, p := range encodeFor(t, tc.f(), [][][]byte{au}) {
					p.Marker = false
					p.Timestamp = ts
					p.SequenceNumber = seq
					seq++
					units, err := dec(p)
					if err != nil {
						t.Fatal(err)
					}
					for _, u := range units {
						got = append(got, u.ts)
						sizes = append(sizes, len(u.nalus))
						if !equalNALUs(u.nalus, tc.aus[len(got)-1]) {
							t.Fatalf("unit %d: NALUs %x", len(got)-1, u.nalus)
						}
					}
				}
			}
			want := []uint32{1000, 4600, 8200} // the last unit waits for a next timestamp
			if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(sizes) != tc.sizes {
				t.Fatalf("units at %v with %v NALUs, want %v with %s", got, sizes, want, tc.sizes)
			}
		})
	}
}
