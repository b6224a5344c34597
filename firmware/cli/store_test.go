package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true},
		{"512M", 512 << 20, true},
		{"20G", 20 << 30, true},
		{"64MiB", 64 << 20, true},
		{"1.5G", 3 << 29, true},
		{"2t", 2 << 40, true},
		{"", 0, false},
		{"-1G", 0, false},
		{"12X", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// recordSome writes a few seconds of one stream into the volume in dir.
func recordSome(t *testing.T, dir string) {
	t.Helper()
	s, err := ringstore.Open(context.Background(), dir, ringstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Stream("cam1")
	w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{{0x67}, {0x68}}}})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 100; i++ {
		if _, err := w.Append(ringstore.Frame{Time: base.Add(time.Duration(i) * 40 * time.Millisecond), Key: i%25 == 0, Data: make([]byte, 3000)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStoreCommands(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		before   func(t *testing.T)
		code     int
		contains string
	}{
		{"help", []string{"store", "--help"}, nil, 0, "rebuild"},
		{"format help", []string{"store", "format", "--help"}, nil, 0, "-slot-size"},
		{"format needs size", []string{"store", "format", "--data", dir}, nil, 2, ""},
		{"format bad size", []string{"store", "format", "--data", dir, "--size", "lots"}, nil, 2, ""},
		{"format", []string{"store", "format", "--data", dir, "--size", "8M", "--slot-size", "1M"}, nil, 0, "8 slots of 1.0 MiB"},
		{"format again", []string{"store", "format", "--data", dir, "--size", "8M"}, nil, 1, ""},
		{"format other", []string{"store", "format", "--data", other, "--size", "4M", "--slot-size", "1M"}, nil, 0, "formatted"},
		{"stats empty", []string{"store", "stats", "--data", dir}, nil, 0, "capacity    8.0 MiB in 8 slots"},
		{"stats", []string{"store", "stats", "--data", dir}, func(t *testing.T) { recordSome(t, dir) }, 0, "cam1"},
		{"stats swapped index", []string{"store", "stats", "--data", dir, "--index", filepath.Join(other, "index.db")}, nil, 1, ""},
		{"fsck", []string{"store", "fsck", "--data", dir}, nil, 0, "no problems found"},
		{"fsck swapped index", []string{"store", "fsck", "--data", other, "--index", filepath.Join(dir, "index.db")}, nil, 1, ""},
		{"fsck finds a flipped byte", []string{"store", "fsck", "--data", dir}, func(t *testing.T) { flipByte(t, dir) }, 1, "problem: slot 0"},
		{"rebuild", []string{"store", "rebuild", "--data", dir}, func(t *testing.T) { os.Remove(filepath.Join(dir, "index.db")) }, 0, "index rebuilt"},
		{"stats after rebuild", []string{"store", "stats", "--data", dir}, nil, 0, "cam1"},
		{"rebuild nothing", []string{"store", "rebuild", "--data", t.TempDir()}, nil, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			code, out, errOut := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.contains) {
				t.Fatalf("stdout %q does not contain %q", out, tt.contains)
			}
		})
	}
	code, out, _ := run(t, "store", "stats", "--data", dir, "--json")
	var js statsJSON
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != 0 {
		t.Fatalf("stats --json: exit %d, %v: %s", code, err, out)
	}
	if js.Capacity != 8<<20 || len(js.Streams) != 1 || js.Streams[0].Retention < 2 || !js.Healthy {
		t.Fatalf("stats --json: %+v", js)
	}
}

// flipByte corrupts the middle of the first slot's first frames record.
func flipByte(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "slots", "000000.slot")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The open record is first (one 4 KiB batch); frames follow.
	b[4096+2000] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
