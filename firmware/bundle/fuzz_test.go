package bundle

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open with the test key trusted. Open
// must never panic, must fail with one of the package's errors, and a bundle
// it accepts must read back every part.
func FuzzOpen(f *testing.F) {
	good := testBundle(f, baseManifest())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(Magic))
	pub := testKey(1).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(bytes.NewReader(data), int64(len(data)), Options{Keys: []ed25519.PublicKey{pub}, Board: "nvr4", CurrentVersion: "1.0.0"})
		if err != nil {
			for _, want := range []error{ErrCorrupt, ErrUnknownKey, ErrBadSignature, ErrWrongBoard, ErrDowngrade, ErrBelowMinimum} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Open: untyped error %v", err)
		}
		for _, p := range b.Manifest.Parts {
			r, _, err := b.Part(p.Name)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != p.Size {
				t.Fatalf("part %q: read %d of %d: %v", p.Name, n, p.Size, err)
			}
		}
	})
}

// TestFuzzCorpus checks that the committed seed corpus still holds a bundle
// that opens, so a format change cannot silently leave the fuzzer without a
// valid seed. NVR_UPDATE_CORPUS=1 rewrites it.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	good := testBundle(t, baseManifest())
	seeds := map[string][]byte{
		"valid-bundle":   good,
		"truncated-half": good[:len(good)/2],
		"header-only":    good[:HeaderSize],
		"bad-magic":      append([]byte("NVRFX\x00\r\n"), good[8:]...),
	}
	if os.Getenv("NVR_UPDATE_CORPUS") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "valid-bundle"))
	if err != nil {
		t.Fatalf("committed corpus: %v (NVR_UPDATE_CORPUS=1 go test -run TestFuzzCorpus writes it)", err)
	}
	s := strings.TrimSuffix(strings.TrimPrefix(string(raw), "go test fuzz v1\n[]byte("), ")\n")
	data, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("corpus entry: %v", err)
	}
	pub := testKey(1).Public().(ed25519.PublicKey)
	if _, err := Open(strings.NewReader(data), int64(len(data)), Options{Keys: []ed25519.PublicKey{pub}}); err != nil {
		t.Fatalf("committed valid-bundle seed no longer opens: %v", err)
	}
}
