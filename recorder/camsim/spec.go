package camsim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParsePathSpec parses a path given on a command line:
//
//	NAME[=VIDEO][,audio=none|aac|pcmu][,bitrate=RATE][,user=USER,pass=PASS]
//
// VIDEO is h264 (default) or h265 (or video=h265 anywhere in the list); RATE
// is bit/s with an optional k, M or G suffix (decimal: 4M = 4000000). For
// example "cam2=h265,audio=aac,bitrate=4M". Values cannot contain commas.
func ParsePathSpec(spec string) (string, PathConfig, error) {
	var cfg PathConfig
	name, rest, _ := strings.Cut(spec, "=")
	if err := validPathName(name); err != nil || strings.Contains(name, ",") {
		return "", cfg, fmt.Errorf("%w: path spec %q: bad name", ErrBadConfig, spec)
	}
	if rest == "" {
		return name, cfg, cfg.validate()
	}
	for i, item := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			if i != 0 {
				return "", cfg, fmt.Errorf("%w: path spec %q: %q is not key=value", ErrBadConfig, spec, item)
			}
			k, v = "video", item
		}
		switch k {
		case "video":
			cfg.Video = VideoCodec(v)
		case "audio":
			cfg.Audio = AudioCodec(v)
		case "bitrate":
			b, err := ParseBitrate(v)
			if err != nil {
				return "", cfg, fmt.Errorf("path spec %q: %w", spec, err)
			}
			cfg.Bitrate = b
		case "user":
			cfg.User = v
		case "pass":
			cfg.Pass = v
		default:
			return "", cfg, fmt.Errorf("%w: path spec %q: unknown key %q (want video, audio, bitrate, user, pass)", ErrBadConfig, spec, k)
		}
	}
	if err := cfg.validate(); err != nil {
		return "", cfg, fmt.Errorf("path spec %q: %w", spec, err)
	}
	return name, cfg, nil
}

// ParseBitrate parses a bit rate such as "4M", "1500k", "2.5M" or "800000"
// (decimal suffixes k, M, G).
func ParseBitrate(s string) (int64, error) {
	mult := 1.0
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, num = 1e3, s[:n-1]
		case 'M':
			mult, num = 1e6, s[:n-1]
		case 'G':
			mult, num = 1e9, s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > 1e11 {
		return 0, fmt.Errorf("%w: bitrate %q (want e.g. 4M, 1500k, 800000)", ErrBadConfig, s)
	}
	return int64(math.Round(v * mult)), nil
}
