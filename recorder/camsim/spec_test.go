package camsim

import (
	"errors"
	"testing"
)

func TestParsePathSpec(t *testing.T) {
	for _, tt := range []struct {
		spec string
		name string
		cfg  PathConfig
		err  bool
	}{
		{"cam1", "cam1", PathConfig{Video: H264, Audio: AudioNone}, false},
		{"cam1=h264", "cam1", PathConfig{Video: H264, Audio: AudioNone}, false},
		{"cam2=h265,audio=aac,bitrate=4M", "cam2", PathConfig{Video: H265, Audio: AAC, Bitrate: 4_000_000}, false},
		{"x=audio=pcmu,video=h265", "x", PathConfig{Video: H265, Audio: PCMU}, false},
		{"Streaming/Channels/101=h264,user=admin,pass=12345", "Streaming/Channels/101", PathConfig{Video: H264, Audio: AudioNone, User: "admin", Pass: "12345"}, false},
		{"c=bitrate=1500k", "c", PathConfig{Video: H264, Audio: AudioNone, Bitrate: 1_500_000}, false},
		{"", "", PathConfig{}, true},
		{"=h264", "", PathConfig{}, true},
		{"/cam=h264", "", PathConfig{}, true},
		{"cam/=h264", "", PathConfig{}, true},
		{"a//b", "", PathConfig{}, true},
		{"a b=h264", "", PathConfig{}, true},
		{"cam?x=1", "", PathConfig{}, true},
		{"cam=vp8", "", PathConfig{}, true},
		{"cam=h264,audio=opus", "", PathConfig{}, true},
		{"cam=h264,bitrate=fast", "", PathConfig{}, true},
		{"cam=h264,h265", "", PathConfig{}, true},
		{"cam=h264,color=red", "", PathConfig{}, true},
		{"cam=h264,pass=x", "", PathConfig{}, true},
	} {
		name, cfg, err := ParsePathSpec(tt.spec)
		if tt.err {
			if !errors.Is(err, ErrBadConfig) {
				t.Errorf("%q: err %v, want ErrBadConfig", tt.spec, err)
			}
			continue
		}
		if err != nil || name != tt.name || cfg != tt.cfg {
			t.Errorf("%q: %q %+v %v, want %q %+v", tt.spec, name, cfg, err, tt.name, tt.cfg)
		}
	}
}

func TestParseBitrate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"4M", 4_000_000, false}, {"2.5M", 2_500_000, false}, {"1500k", 1_500_000, false},
		{"800000", 800_000, false}, {"1G", 1_000_000_000, false}, {"0", 0, false},
		{"", 0, true}, {"M", 0, true}, {"-1M", 0, true}, {"1T", 0, true}, {"NaN", 0, true}, {"1e300", 0, true},
	} {
		got, err := ParseBitrate(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseBitrate(%q) = %d, %v", tt.in, got, err)
		}
	}
}

// FuzzParsePathSpec checks that no spec crashes the parser and that every
// accepted spec yields a valid configuration.
func FuzzParsePathSpec(f *testing.F) {
	for _, s := range []string{"cam1", "cam2=h265,audio=aac,bitrate=4M", "a/b=h264,user=u,pass=p", "x=bitrate=1.5k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		name, cfg, err := ParsePathSpec(spec)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		if validPathName(name) != nil || cfg.validate() != nil || cfg.Bitrate < 0 {
			t.Fatalf("accepted %q as %q %+v", spec, name, cfg)
		}
	})
}
