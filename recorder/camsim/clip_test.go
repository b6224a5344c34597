package camsim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"
)

func clipDir(t testing.TB) string {
	t.Helper()
	dir, err := findClipDir("")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readClip(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(clipDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCommittedClips(t *testing.T) {
	dir := clipDir(t)
	var total int64
	for _, tt := range []struct {
		file   string
		codec  VideoCodec
		params int
	}{
		{"h264.h264", H264, 2}, {"h264_alt.h264", H264, 2},
		{"h265.h265", H265, 3}, {"h265_alt.h265", H265, 3},
	} {
		t.Run(tt.file, func(t *testing.T) {
			c, err := loadVideoClip(dir, tt.file, tt.codec)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.aus) != 75 || len(c.params) != tt.params {
				t.Fatalf("%d access units, %d parameter sets; want 75, %d", len(c.aus), len(c.params), tt.params)
			}
			for i, key := range c.keys {
				if key != (i%25 == 0) {
					t.Errorf("frame %d: key %v, want a keyframe every 25 frames", i, key)
				}
			}
			if r := c.naturalBitrate(); r < 100_000 || r > 800_000 {
				t.Errorf("natural bitrate %d bit/s", r)
			}
		})
	}
	a, err := loadAACClip(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.sampleRate != 16000 || a.channels != 1 || len(a.aus) < 45 {
		t.Errorf("AAC clip: %d Hz, %d channels, %d units", a.sampleRate, a.channels, len(a.aus))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size()
	}
	if total > 2<<20 {
		t.Errorf("clips take %d bytes, keep them under 2 MiB", total)
	}
}

func TestParseVideoClipErrors(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1e}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := []byte{0x65, 0x88, 0x84}
	p := []byte{0x41, 0x9a, 0x02}
	annexB := func(nalus ...[]byte) []byte {
		var b []byte
		for _, n := range nalus {
			b = append(b, 0, 0, 0, 1)
			b = append(b, n...)
		}
		return b
	}
	for _, tt := range []struct {
		name  string
		buf   []byte
		codec VideoCodec
		aus   int
		err   bool
	}{
		{"ok", annexB(sps, pps, idr, p, p), H264, 3, false},
		{"aud and filler dropped", annexB([]byte{9, 0xf0}, sps, pps, idr, []byte{12, 0xff, 0x80}, []byte{9, 0xf0}, p), H264, 2, false},
		{"repeated params", annexB(sps, pps, idr, sps, pps, idr), H264, 2, false},
		{"empty", nil, H264, 0, true},
		{"no start code", []byte{0x67, 1, 2}, H264, 0, true},
		{"no pps", annexB(sps, idr), H264, 0, true},
		{"no pictures", annexB(sps, pps), H264, 0, true},
		{"first not key", annexB(sps, pps, p, idr), H264, 0, true},
		{"params change", annexB(sps, pps, idr, []byte{0x67, 0x4d}, p), H264, 0, true},
		{"stap-a in byte stream", annexB(sps, pps, idr, []byte{24, 1}), H264, 0, true},
		{"h265 short nalu", annexB([]byte{0x40}), H265, 0, true},
		{"h265 no vps", annexB([]byte{0x42, 1, 1}, []byte{0x44, 1, 1}, []byte{0x26, 1, 0x80}), H265, 0, true},
		{"h265 ok", annexB([]byte{0x40, 1, 1}, []byte{0x42, 1, 1}, []byte{0x44, 1, 1}, []byte{0x26, 1, 0x80}, []byte{0x02, 1, 0x80}), H265, 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseVideoClip(tt.buf, tt.codec)
			if tt.err {
				if !errors.Is(err, ErrBadClip) {
					t.Fatalf("err %v, want ErrBadClip", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.aus) != tt.aus {
				t.Fatalf("%d access units, want %d", len(c.aus), tt.aus)
			}
		})
	}
}

func TestParseAACClipErrors(t *testing.T) {
	good := readClip(t, aacClipFile)
	for _, tt := range []struct {
		name string
		buf  []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-3]},
		{"garbage", bytes.Repeat([]byte{0x12}, 64)},
	} {
		if _, err := parseAACClip(tt.buf); !errors.Is(err, ErrBadClip) {
			t.Errorf("%s: err %v, want ErrBadClip", tt.name, err)
		}
	}
}

// FuzzParseVideoClip checks that no input crashes the clip parser and that
// what it accepts is consistent.
func FuzzParseVideoClip(f *testing.F) {
	f.Add(readClip(f, "h264_alt.h264")[:600], false)
	f.Add(readClip(f, "h265_alt.h265")[:600], true)
	f.Fuzz(func(t *testing.T, buf []byte, h265 bool) {
		codec := H264
		if h265 {
			codec = H265
		}
		c, err := parseVideoClip(buf, codec)
		if err != nil {
			if !errors.Is(err, ErrBadClip) {
				t.Fatalf("error %v does not wrap ErrBadClip", err)
			}
			return
		}
		if len(c.aus) == 0 || len(c.keys) != len(c.aus) || !c.keys[0] {
			t.Fatalf("accepted clip with %d units, keys %v", len(c.aus), c.keys)
		}
		for _, au := range c.aus {
			if len(au) == 0 {
				t.Fatal("empty access unit")
			}
		}
	})
}

// FuzzParseAACClip checks that no input crashes the ADTS clip parser.
func FuzzParseAACClip(f *testing.F) {
	f.Add(readClip(f, aacClipFile)[:400])
	f.Fuzz(func(t *testing.T, buf []byte) {
		c, err := parseAACClip(buf)
		if err != nil {
			if !errors.Is(err, ErrBadClip) {
				t.Fatalf("error %v does not wrap ErrBadClip", err)
			}
			return
		}
		if len(c.aus) == 0 || c.sampleRate <= 0 {
			t.Fatalf("accepted clip: %d units at %d Hz", len(c.aus), c.sampleRate)
		}
	})
}

func TestFillerBitrate(t *testing.T) {
	dir := clipDir(t)
	for _, codec := range []VideoCodec{H264, H265} {
		c, err := loadVideoClip(dir, videoClipFiles[codec][0], codec)
		if err != nil {
			t.Fatal(err)
		}
		pz, err := newVideoPacketizer(codec)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []int64{0, 1_000_000, 4_000_000, 16_000_000} {
			l, err := buildVideoLoop(c, target, pz)
			if err != nil {
				t.Fatal(err)
			}
			want := target
			if want == 0 {
				want = c.naturalBitrate()
			}
			if d := float64(l.bitrate-want) / float64(want); d < -0.01 || d > 0.01 {
				t.Errorf("%s at %d: loop bitrate %d", codec, target, l.bitrate)
			}
		}
		if _, err := buildVideoLoop(c, 1000, pz); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: bitrate below the clip's: %v, want ErrBadConfig", codec, err)
		}
	}
	// A filler NAL unit decodes as one NAL unit of its type, exactly as long.
	for _, n := range []int{5, 100, 5000} {
		b := fillerNALU(H264, n)
		if len(b) != n || b[0] != 12 || b[n-1] != 0x80 || bytes.Contains(b, []byte{0, 0}) {
			t.Errorf("H.264 filler of %d: % x", n, b[:min(8, n)])
		}
		if b := fillerNALU(H265, n); len(b) != n || (b[0]>>1)&0x3f != 38 {
			t.Errorf("H.265 filler of %d: % x", n, b[:min(8, n)])
		}
	}
	// The packetized filler reassembles to the same access unit.
	pz, _ := newVideoPacketizer(H264)
	au := [][]byte{{0x65, 1, 2, 3}, fillerNALU(H264, 4000)}
	pkts, err := pz.packetize(au)
	if err != nil {
		t.Fatal(err)
	}
	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for i, p := range pkts {
		got, err = dec.Decode(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Marker: p.marker}, Payload: p.payload})
	}
	if err != nil || len(got) != 2 || !bytes.Equal(got[1], au[1]) {
		t.Errorf("reassembled %d NAL units, err %v", len(got), err)
	}
}

func TestFindClipDir(t *testing.T) {
	if d, err := findClipDir("/some/dir"); err != nil || d != "/some/dir" {
		t.Errorf("explicit dir: %q %v", d, err)
	}
	t.Chdir(t.TempDir())
	if _, err := findClipDir(""); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no clips above a temp dir: %v, want ErrBadConfig", err)
	}
	if _, err := New(Options{ClipDir: t.TempDir()}); err == nil {
		t.Error("New with an empty clip directory succeeded")
	}
}
