package recorder

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/nvrfw/nvr/ringstore"
)

// Real parameter sets (from mediacommon's test tables).
var (
	testSPS1080 = []byte{ // H.264 baseline 1920x1080, 30 fps, POC type 2
		0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02,
		0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04,
		0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
	}
	testSPS352 = []byte{ // H.264 high 352x288
		0x67, 0x64, 0x00, 0x0c, 0xac, 0x3b, 0x50, 0xb0,
		0x4b, 0x42, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00,
		0x00, 0x03, 0x00, 0x3d, 0x08,
	}
	testPPS = []byte{0x68, 0xce, 0x3c, 0x80}
	testIDR = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff}
	testP   = []byte{0x41, 0x9a, 0x02, 0x03}
	testSEI = []byte{0x06, 0x05, 0x01, 0x80}

	testVPS265 = []byte{0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0x99, 0x98, 0x09}
	testSPS265 = []byte{ // H.265 1920x1080
		0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03,
		0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
		0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5,
		0x96, 0x66, 0x69, 0x24, 0xca, 0xe0, 0x10, 0x00,
		0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01,
		0xe0, 0x80,
	}
	testPPS265   = []byte{0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40}
	testIDR265   = []byte{0x26, 0x01, 0xaf, 0x08, 0x42, 0x23}
	testCRA265   = []byte{0x2a, 0x01, 0xaf, 0x08, 0x42, 0x23}
	testTRAIL265 = []byte{0x02, 0x01, 0xd0, 0x08, 0x42}
)

func TestVideoTrackPrepare(t *testing.T) {
	h264Params := paramSets{sps: testSPS1080, pps: testPPS}
	h265Params := paramSets{vps: testVPS265, sps: testSPS265, pps: testPPS265}
	type step struct {
		in         [][]byte
		ok         bool
		err        error
		key        bool
		out        [][]byte // expected NALUs when ok
		wantConfig [][]byte // expected config (nil: none)
	}
	tests := []struct {
		name  string
		codec ringstore.Codec
		sdp   paramSets
		steps []step
	}{
		{
			name: "H.264 params from SDP are put in front of the keyframe", codec: ringstore.CodecH264, sdp: h264Params,
			steps: []step{
				{in: [][]byte{testIDR}, ok: true, key: true, out: [][]byte{testSPS1080, testPPS, testIDR}, wantConfig: [][]byte{testSPS1080, testPPS}},
				{in: [][]byte{testP}, ok: true, out: [][]byte{testP}},
				{in: [][]byte{testSEI, testIDR}, ok: true, key: true, out: [][]byte{testSPS1080, testPPS, testSEI, testIDR}},
			},
		},
		{
			name: "H.264 in-band params only", codec: ringstore.CodecH264,
			steps: []step{
				{in: [][]byte{testP}, ok: true, out: [][]byte{testP}},
				{in: [][]byte{testIDR}, err: errNoParams},
				{in: [][]byte{testSPS1080, testPPS}, ok: false},
				{in: [][]byte{testIDR}, ok: true, key: true, out: [][]byte{testSPS1080, testPPS, testIDR}, wantConfig: [][]byte{testSPS1080, testPPS}},
			},
		},
		{
			name: "H.264 mid-stream SPS change gives a new config at the keyframe", codec: ringstore.CodecH264, sdp: h264Params,
			steps: []step{
				{in: [][]byte{testIDR}, ok: true, key: true, out: [][]byte{testSPS1080, testPPS, testIDR}, wantConfig: [][]byte{testSPS1080, testPPS}},
				{in: [][]byte{testSPS352, testPPS, testIDR}, ok: true, key: true, out: [][]byte{testSPS352, testPPS, testIDR}, wantConfig: [][]byte{testSPS352, testPPS}},
				{in: [][]byte{testIDR}, ok: true, key: true, out: [][]byte{testSPS352, testPPS, testIDR}},
			},
		},
		{
			name: "H.265 IDR and CRA are keyframes, TRAIL is not", codec: ringstore.CodecH265, sdp: h265Params,
			steps: []step{
				{in: [][]byte{testIDR265}, ok: true, key: true, out: [][]byte{testVPS265, testSPS265, testPPS265, testIDR265}, wantConfig: [][]byte{testVPS265, testSPS265, testPPS265}},
				{in: [][]byte{testTRAIL265}, ok: true, out: [][]byte{testTRAIL265}},
				{in: [][]byte{testCRA265}, ok: true, key: true, out: [][]byte{testVPS265, testSPS265, testPPS265, testCRA265}},
			},
		},
		{
			name: "malformed units", codec: ringstore.CodecH264, sdp: h264Params,
			steps: []step{
				{in: nil, err: errMalformedAU},
				{in: [][]byte{{}, {}}, err: errMalformedAU},
				{in: make([][]byte, 4*maxNALUsPerAU+1), err: errMalformedAU},
				{in: append(repeat(testSEI, 10), repeat(testP, maxNALUsPerAU)...), ok: true, out: repeat(testP, maxNALUsPerAU)},
				{in: repeat(testP, maxNALUsPerAU+1), err: errMalformedAU},
				{in: append(repeat(testSEI, 3), repeat(testIDR, maxNALUsPerAU-1)...), err: errMalformedAU}, // no room for SPS and PPS
				{in: [][]byte{{}, testP}, ok: true, out: [][]byte{testP}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVideoTrack(tc.codec, tc.sdp)
			for i, s := range tc.steps {
				au, ok, err := v.prepare(s.in)
				if !errors.Is(err, s.err) || (err != nil) != (s.err != nil) {
					t.Fatalf("step %d: err = %v, want %v", i, err, s.err)
				}
				if ok != s.ok {
					t.Fatalf("step %d: ok = %v, want %v", i, ok, s.ok)
				}
				if !ok {
					continue
				}
				if au.key != s.key {
					t.Fatalf("step %d: key = %v, want %v", i, au.key, s.key)
				}
				if !equalNALUs(au.nalus, s.out) {
					t.Fatalf("step %d: NALUs = %x, want %x", i, au.nalus, s.out)
				}
				if !equalNALUs(au.config, s.wantConfig) {
					t.Fatalf("step %d: config = %x, want %x", i, au.config, s.wantConfig)
				}
				if au.config != nil {
					v.commit()
				}
			}
		})
	}
}

func TestVideoTrackFormat(t *testing.T) {
	tests := []struct {
		name          string
		codec         ringstore.Codec
		sps           []byte
		width, height int
	}{
		{"H.264 1080p", ringstore.CodecH264, testSPS1080, 1920, 1080},
		{"H.264 CIF", ringstore.CodecH264, testSPS352, 352, 288},
		{"H.265 1080p", ringstore.CodecH265, testSPS265, 1920, 1080},
		{"garbage SPS", ringstore.CodecH264, []byte{0x67, 0xff}, 0, 0},
	}
	for _, tc := range tests {
		v := newVideoTrack(tc.codec, paramSets{sps: tc.sps})
		if v.format.width != tc.width || v.format.height != tc.height {
			t.Errorf("%s: %dx%d, want %dx%d", tc.name, v.format.width, v.format.height, tc.width, tc.height)
		}
	}
}

func TestAVCC(t *testing.T) {
	in := [][]byte{testSPS1080, testPPS, testIDR}
	var got h264.AVCC
	if err := got.Unmarshal(avcc(in)); err != nil {
		t.Fatal(err)
	}
	if !equalNALUs(got, in) {
		t.Fatalf("AVCC round trip: %x, want %x", got, in)
	}
	if !bytes.Equal(avcc([][]byte{{0xaa}}), []byte{0, 0, 0, 1, 0xaa}) {
		t.Fatal("AVCC length prefix is not 4-byte big-endian")
	}
}

func repeat(n []byte, count int) [][]byte {
	out := make([][]byte, count)
	for i := range out {
		out[i] = n
	}
	return out
}

func equalNALUs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// splitNALUs cuts fuzz input into NALUs: each starts with a one-byte length.
func splitNALUs(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// FuzzAccessUnit feeds camera access units (NALUs as the depacketizer
// gives them) through keyframe detection, parameter-set extraction, DTS
// extraction and AVCC framing, and checks what the store would get.
func FuzzAccessUnit(f *testing.F) {
	join := func(nalus ...[]byte) []byte {
		var b []byte
		for _, n := range nalus {
			b = append(b, byte(len(n)))
			b = append(b, n...)
		}
		return b
	}
	f.Add(join(testSPS1080, testPPS, testIDR), false)
	f.Add(join(testP), false)
	f.Add(join(testSEI, testIDR), false)
	f.Add(join(testVPS265, testSPS265, testPPS265, testIDR265), true)
	f.Add(join(testTRAIL265), true)
	f.Add(join(testCRA265), true)
	f.Add([]byte{0, 1, 0x65, 2, 0x67}, false)
	f.Fuzz(func(t *testing.T, data []byte, h265 bool) {
		codec := ringstore.CodecH264
		sdp := paramSets{sps: testSPS1080, pps: testPPS}
		if h265 {
			codec = ringstore.CodecH265
			sdp = paramSets{vps: testVPS265, sps: testSPS265, pps: testPPS265}
		}
		v := newVideoTrack(codec, sdp)
		// The same unit twice, then with the SDP's keyframe around it, so
		// the DTS extractor sees a keyframe and a following unit.
		units := [][][]byte{splitNALUs(data), {testIDR, testIDR265}, splitNALUs(data)}
		for i, nalus := range units {
			au, ok, err := v.prepare(nalus)
			if err != nil || !ok {
				continue
			}
			dts := v.dts(au, int64(i)*3000)
			if dts > int64(i)*3000 {
				t.Fatalf("DTS %d after PTS %d", dts, i*3000)
			}
			var back h264.AVCC
			if err := back.Unmarshal(avcc(au.nalus)); err != nil {
				t.Fatalf("own AVCC does not parse: %v", err)
			}
			if !equalNALUs(back, au.nalus) {
				t.Fatal("AVCC round trip differs")
			}
			if au.key {
				if !v.latest.complete(codec) {
					t.Fatal("keyframe accepted without parameter sets")
				}
				if !hasKind(codec, au.nalus, naluSPS) || !hasKind(codec, au.nalus, naluPPS) {
					t.Fatal("keyframe without in-band SPS/PPS")
				}
			}
			if au.config != nil {
				v.commit()
			}
		}
	})
}

func hasKind(c ringstore.Codec, nalus [][]byte, k naluKind) bool {
	for _, n := range nalus {
		if len(n) > 0 && classify(c, n) == k {
			return true
		}
	}
	return false
}

func TestAppendAVCC(t *testing.T) {
	tests := []struct {
		name  string
		dst   []byte
		nalus [][]byte
		want  []byte
	}{
		{"nothing", nil, nil, nil},
		{"one NALU", nil, [][]byte{{0xaa}}, []byte{0, 0, 0, 1, 0xaa}},
		{"two NALUs after a prefix", []byte{9}, [][]byte{{1, 2}, {3}}, []byte{9, 0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3}},
		{"into a reused buffer", make([]byte, 0, 64), [][]byte{{0x65, 1, 2, 3}}, []byte{0, 0, 0, 4, 0x65, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spare := cap(tt.dst) - len(tt.dst)
			got := appendAVCC(tt.dst, tt.nalus)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("appendAVCC = %x, want %x", got, tt.want)
			}
			if spare >= len(tt.want)-len(tt.dst) && len(got) > 0 && &got[0] != &tt.dst[:1][0] {
				t.Error("a buffer with room was not reused")
			}
		})
	}
}
