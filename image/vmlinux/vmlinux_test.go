package vmlinux

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeBzImage builds a minimal bzImage: setup header, then payload (with the
// 4-byte size trailer) after setupSects+1 sectors.
func fakeBzImage(payload []byte, setupSects byte) []byte {
	eff := int(setupSects)
	if eff == 0 {
		eff = 4
	}
	b := make([]byte, (eff+1)*512)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(b[0x248:], 0)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)+4))
	b = append(b, payload...)
	return append(b, 1, 2, 3, 4)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestParseHeader(t *testing.T) {
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte{9}, 5000)...)
	good := fakeBzImage(gz(elf), 3)
	tests := []struct {
		name   string
		b      []byte
		format string
		err    error
	}{
		{"gzip", good, "gzip", nil},
		{"xz", fakeBzImage([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 1}, 0), "xz", nil},
		{"short", good[:100], "", ErrNotBzImage},
		{"no magic", append(make([]byte, 0x202), make([]byte, 4096)...), "", ErrNotBzImage},
		{"unknown compression", fakeBzImage([]byte("plain text"), 2), "", ErrNotBzImage},
		{"payload past end", good[:len(good)-10], "", ErrNotBzImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseHeader(bytes.NewReader(tt.b), int64(len(tt.b)))
			if !errors.Is(err, tt.err) || p.Format != tt.format {
				t.Fatalf("ParseHeader = %+v, %v", p, err)
			}
		})
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "vmlinux")
	os.WriteFile(src, good, 0o644)
	if err := Extract(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, elf) {
		t.Fatalf("extracted %d bytes", len(got))
	}
	os.WriteFile(src, fakeBzImage(gz([]byte("not an elf")), 3), 0o644)
	if err := Extract(context.Background(), src, filepath.Join(dir, "bad")); err == nil {
		t.Fatal("Extract of a non-ELF payload succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); err == nil {
		t.Fatal("a failed Extract left its output")
	}
}

// TestExtractDebianKernel extracts the real kernel when make image has
// fetched it (out/kernel); the QEMU smoke test depends on this.
func TestExtractDebianKernel(t *testing.T) {
	matches, _ := filepath.Glob("../../out/kernel/root/boot/vmlinuz-*")
	if len(matches) == 0 {
		t.Skip("out/kernel not fetched: make image fetches it (make qemu-smoke boots the result)")
	}
	dst := filepath.Join(t.TempDir(), "vmlinux")
	if err := Extract(context.Background(), matches[0], dst); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dst)
	t.Logf("%s -> %d bytes", matches[0], st.Size())
}

// FuzzParseHeader: never panics; an accepted payload lies inside the file.
func FuzzParseHeader(f *testing.F) {
	f.Add(fakeBzImage(gz([]byte("\x7fELF")), 3))
	f.Add(fakeBzImage([]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if p.Offset < 0 || p.Length <= 0 || p.Offset+p.Length > int64(len(b)) {
			t.Fatalf("payload %+v outside %d bytes", p, len(b))
		}
	})
}
