package bundle

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
)

func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func bytesSource(name string, b []byte) Source {
	return Source{Name: name, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// testBundle packs a small bundle with key 1.
func testBundle(t testing.TB, m Manifest) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := Pack(&buf, testKey(1), m, []Source{
		bytesSource(PartKernel, bytes.Repeat([]byte("K"), 1000)),
		bytesSource(PartInitramfs, bytes.Repeat([]byte("I"), 3000)),
	})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

func baseManifest() Manifest {
	return Manifest{Version: "1.2.0", MinVersion: "1.0.0", Boards: []string{"nvr4", "nvr8"}, BuildID: "abc123"}
}

func TestOpen(t *testing.T) {
	good := testBundle(t, baseManifest())
	pub1 := testKey(1).Public().(ed25519.PublicKey)
	pub2 := testKey(2).Public().(ed25519.PublicKey)
	mlen := len(good) - HeaderSize - ed25519.SignatureSize - 4000
	sigOff := HeaderSize + mlen
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		data []byte
		opts Options
		want error
	}{
		{"valid", good, Options{Keys: []ed25519.PublicKey{pub1}}, nil},
		{"valid among keys", good, Options{Keys: []ed25519.PublicKey{pub2, pub1}}, nil},
		{"valid with policy", good, Options{Keys: []ed25519.PublicKey{pub1}, Board: "nvr8", CurrentVersion: "1.1.9"}, nil},
		{"same version reinstall", good, Options{Keys: []ed25519.PublicKey{pub1}, CurrentVersion: "v1.2.0"}, nil},
		{"no keys", good, Options{}, ErrUnknownKey},
		{"unknown key", good, Options{Keys: []ed25519.PublicKey{pub2}}, ErrUnknownKey},
		{"signature altered", flip(sigOff + 5), Options{Keys: []ed25519.PublicKey{pub1}}, ErrBadSignature},
		{"manifest altered", flip(HeaderSize + mlen - 3), Options{Keys: []ed25519.PublicKey{pub1}}, ErrBadSignature},
		{"flags altered", flip(11), Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"bad magic", flip(0), Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"kernel altered", flip(sigOff + 64 + 10), Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"initramfs altered", flip(len(good) - 1), Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"truncated in header", good[:10], Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"truncated in manifest", good[:HeaderSize+10], Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"truncated in parts", good[:len(good)-1], Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"trailing bytes", append(bytes.Clone(good), 0), Options{Keys: []ed25519.PublicKey{pub1}}, ErrCorrupt},
		{"wrong board", good, Options{Keys: []ed25519.PublicKey{pub1}, Board: "nvr16"}, ErrWrongBoard},
		{"downgrade", good, Options{Keys: []ed25519.PublicKey{pub1}, CurrentVersion: "1.3.0"}, ErrDowngrade},
		{"downgrade allowed", good, Options{Keys: []ed25519.PublicKey{pub1}, CurrentVersion: "1.3.0", AllowDowngrade: true}, nil},
		{"pre-release is older", good, Options{Keys: []ed25519.PublicKey{pub1}, CurrentVersion: "1.2.0-rc.1"}, nil},
		{"below minimum", good, Options{Keys: []ed25519.PublicKey{pub1}, CurrentVersion: "0.9.0"}, ErrBelowMinimum},
		{"below minimum even if downgrades allowed", good, Options{Keys: []ed25519.PublicKey{pub1}, CurrentVersion: "0.9.0", AllowDowngrade: true}, ErrBelowMinimum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(bytes.NewReader(tt.data), int64(len(tt.data)), tt.opts)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Open: err %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if b.Manifest.Version != "1.2.0" || b.Manifest.KeyID != KeyID(pub1) || len(b.Manifest.Parts) != 2 {
				t.Fatalf("manifest %+v", b.Manifest)
			}
			r, p, err := b.Part(PartInitramfs)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if p.Size != 3000 || string(got) != strings.Repeat("I", 3000) {
				t.Fatalf("initramfs part: %d bytes, %+v", len(got), p)
			}
			if _, _, err := b.Part("nope"); err == nil {
				t.Fatal("Part(nope) succeeded")
			}
		})
	}
}

func TestPackRefusesBadManifest(t *testing.T) {
	tests := []struct {
		name string
		m    Manifest
		src  []Source
	}{
		{"no board", Manifest{Version: "1.0.0"}, []Source{bytesSource("kernel", nil)}},
		{"bad version", Manifest{Version: "one", Boards: []string{"b"}}, []Source{bytesSource("kernel", nil)}},
		{"bad min version", Manifest{Version: "1", MinVersion: "x", Boards: []string{"b"}}, []Source{bytesSource("kernel", nil)}},
		{"no parts", Manifest{Version: "1.0.0", Boards: []string{"b"}}, nil},
		{"duplicate part", Manifest{Version: "1.0.0", Boards: []string{"b"}}, []Source{bytesSource("kernel", nil), bytesSource("kernel", nil)}},
		{"bad part name", Manifest{Version: "1.0.0", Boards: []string{"b"}}, []Source{bytesSource("../kernel", nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := Pack(&buf, testKey(1), tt.m, tt.src); err == nil {
				t.Fatal("Pack succeeded")
			}
			if buf.Len() != 0 {
				t.Fatalf("Pack wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestPackDetectsChangingSource(t *testing.T) {
	n := 0
	src := Source{Name: "kernel", Open: func() (io.ReadCloser, error) {
		n++
		return io.NopCloser(strings.NewReader(strings.Repeat("x", n))), nil
	}}
	if _, err := Pack(io.Discard, testKey(1), baseManifest(), []Source{src}); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Pack of a changing source: %v", err)
	}
}

func TestPackIsDeterministic(t *testing.T) {
	a, b := testBundle(t, baseManifest()), testBundle(t, baseManifest())
	if !bytes.Equal(a, b) {
		t.Fatal("two packs of the same inputs differ")
	}
}

func TestKeysRoundTrip(t *testing.T) {
	priv := testKey(3)
	pemPriv, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(pemPriv)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	p1, _ := MarshalPublicKey(testKey(1).Public().(ed25519.PublicKey))
	p2, _ := MarshalPublicKey(testKey(2).Public().(ed25519.PublicKey))
	keys, err := ParsePublicKeys(append(p1, p2...))
	if err != nil || len(keys) != 2 || KeyID(keys[1]) != KeyID(testKey(2).Public().(ed25519.PublicKey)) {
		t.Fatalf("ParsePublicKeys: %d keys, %v", len(keys), err)
	}
	if _, err := ParsePublicKeys(pemPriv); !errors.Is(err, ErrBadKey) {
		t.Fatalf("ParsePublicKeys(private key): %v", err)
	}
	if _, err := ParsePrivateKey([]byte("junk")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("ParsePrivateKey(junk): %v", err)
	}
}
