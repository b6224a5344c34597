package vmlinux

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// ErrNotBzImage reports bytes that are not a bzImage this package can read.
var ErrNotBzImage = errors.New("vmlinux: not an x86 bzImage (boot protocol >= 2.08)")

// Payload locates the compressed kernel inside a bzImage.
type Payload struct {
	// Offset and Length locate the compressed stream in the file; Length
	// excludes the 4-byte uncompressed-size trailer the kernel build appends.
	Offset, Length int64
	// Format is "gzip", "xz", "zstd", "lz4", "bzip2" or "lzma".
	Format string
}

// magics maps each payload compression to its first bytes.
func magics() []struct {
	format string
	magic  []byte
} {
	return []struct {
		format string
		magic  []byte
	}{
		{"gzip", []byte{0x1f, 0x8b}},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}},
		{"bzip2", []byte{'B', 'Z', 'h'}},
		{"lzma", []byte{0x5d, 0, 0}},
	}
}

// ParseHeader reads the setup header of a bzImage of size bytes and locates
// its payload.
func ParseHeader(r io.ReaderAt, size int64) (Payload, error) {
	var hdr [0x250]byte
	if size < int64(len(hdr)) {
		return Payload{}, fmt.Errorf("%w: %d bytes", ErrNotBzImage, size)
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return Payload{}, fmt.Errorf("vmlinux: read header: %w", err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return Payload{}, fmt.Errorf("%w: no HdrS magic", ErrNotBzImage)
	}
	if v := binary.LittleEndian.Uint16(hdr[0x206:]); v < 0x208 {
		return Payload{}, fmt.Errorf("%w: boot protocol %#x", ErrNotBzImage, v)
	}
	setupSects := int64(hdr[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	n := int64(binary.LittleEndian.Uint32(hdr[0x24c:]))
	if n <= 4 || off < 0 || off+n > size {
		return Payload{}, fmt.Errorf("%w: payload [%d, +%d) outside the %d-byte file", ErrNotBzImage, off, n, size)
	}
	head := make([]byte, 6)
	if _, err := r.ReadAt(head, off); err != nil {
		return Payload{}, fmt.Errorf("vmlinux: read payload: %w", err)
	}
	for _, m := range magics() {
		if bytes.HasPrefix(head, m.magic) {
			return Payload{Offset: off, Length: n - 4, Format: m.format}, nil
		}
	}
	return Payload{}, fmt.Errorf("%w: unknown payload compression % x", ErrNotBzImage, head)
}

// Extract writes the uncompressed vmlinux of the bzImage at src to dst
// (written to dst.tmp and renamed when complete and checked to be ELF).
func Extract(ctx context.Context, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	p, err := ParseHeader(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	defer os.Remove(tmp)
	if err := decompress(ctx, p.Format, io.NewSectionReader(f, p.Offset, p.Length), out); err != nil {
		out.Close()
		return fmt.Errorf("vmlinux: decompress %s payload of %s: %w", p.Format, src, err)
	}
	magic := make([]byte, 4)
	if _, err := out.ReadAt(magic, 0); err != nil || string(magic) != "\x7fELF" {
		out.Close()
		return fmt.Errorf("vmlinux: %s payload of %s is not an ELF file", p.Format, src)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	return nil
}

// tool returns the host command that decompresses format to stdout.
func tool(format string) ([]string, bool) {
	switch format {
	case "xz":
		return []string{"xz", "-dc", "--single-stream"}, true
	case "lzma":
		return []string{"xz", "-dc", "--format=lzma"}, true
	case "zstd":
		return []string{"zstd", "-dcq"}, true
	case "lz4":
		return []string{"lz4", "-dcq"}, true
	case "bzip2":
		return []string{"bzip2", "-dc"}, true
	}
	return nil, false
}

func decompress(ctx context.Context, format string, r io.Reader, w io.Writer) error {
	if format == "gzip" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		zr.Multistream(false)
		_, err = io.Copy(w, zr)
		return err
	}
	argv, ok := tool(format)
	if !ok {
		return fmt.Errorf("no decompressor for %s", format)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout = r, w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", argv[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
