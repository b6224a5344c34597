package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		name string
		line string
		want time.Duration
		ok   bool
	}{
		{"plain", "1234 (nvrd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0", 3 * time.Second, true},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0", 30 * time.Millisecond, true},
		{"no name", "7 a R 1", 0, false},
		{"short", "7 (x) R 1 2 3", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, false},
		{"negative", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 -1 2 0", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseStat([]byte(c.line))
			if (err == nil) != c.ok || got != c.want {
				t.Errorf("parseStat = %v, %v; want %v, ok %v", got, err, c.want, c.ok)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	for _, c := range []struct {
		name, status string
		want         int64
		ok           bool
	}{
		{"present", "Name:\tnvrd\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\nThreads: 8\n", 2 << 20, true},
		{"missing", "Name:\tnvrd\n", 0, false},
		{"bad unit", "VmRSS:\t 12 MB\n", 0, false},
		{"bad number", "VmRSS:\t x kB\n", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseRSS([]byte(c.status))
			if (err == nil) != c.ok || got != c.want {
				t.Errorf("parseRSS = %v, %v; want %v, ok %v", got, err, c.want, c.ok)
			}
		})
	}
}

// TestUsageSelf reads this process's own figures: CPU time and RSS are
// positive.
func TestUsageSelf(t *testing.T) {
	cpu, mem, err := usage([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if mem <= 0 || cpu < 0 {
		t.Errorf("usage: cpu %v, rss %d", cpu, mem)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (nvrd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := parseStat(b); err == nil && d < 0 {
			t.Errorf("negative CPU time %v", d)
		}
	})
}

func FuzzParseRSS(f *testing.F) {
	f.Add([]byte("Name:\tnvrd\nVmRSS:\t    2048 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseRSS(b)
	})
}

func TestRatios(t *testing.T) {
	rs := []result{
		{recorder: "ffmpeg", cameras: 50, cpuPerCamPct: 0.5, rssPerCamMiB: 50},
		{recorder: "mediamtx", cameras: 50, cpuPerCamPct: 0.4, rssPerCamMiB: 1.6},
		{recorder: "nvrd", cameras: 50, cpuPerCamPct: 0.2, rssPerCamMiB: 1.2, windowSent: 100, windowKept: 98},
		{recorder: "nvrd", cameras: 100, cpuPerCamPct: 0.2, rssPerCamMiB: 1.2}, // no MediaMTX at 100
	}
	got := ratios(rs)
	want := "nvrd/MediaMTX at 50 cameras: CPU 0.50x (target <= 0.5x), RSS 0.75x (target <= 1x), in-window frames lost 2"
	if len(got) != 1 || got[0] != want {
		t.Errorf("ratios = %q, want [%q]", got, want)
	}
}
