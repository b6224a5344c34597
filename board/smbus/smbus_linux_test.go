//go:build linux

package smbus

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDevIoctlOnRegularFile drives the real I2C_SMBUS ioctl path on a plain
// file: the kernel answers ENOTTY, which is neither a NACK nor "not
// supported by the adapter", and the functionality mask gates transactions.
func TestDevIoctlOnRegularFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "notanadapter"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Dev{path: f.Name(), addr: 0x58, f: f, funcs: funcReadByteData | funcReadWordData | funcWriteWordData}
	if _, err := d.ReadWordData(0x79); !errors.Is(err, syscall.ENOTTY) || errors.Is(err, ErrNoDevice) {
		t.Errorf("ReadWordData = %v, want ENOTTY, not ErrNoDevice", err)
	}
	if err := d.WriteWordData(0x79, 1); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("WriteWordData = %v, want ENOTTY", err)
	}
	if _, err := d.ReadBlockData(0x99); !errors.Is(err, ErrNotSupported) {
		t.Errorf("ReadBlockData without the functionality bit = %v, want ErrNotSupported", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadWordData(0x79); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after Close = %v", err)
	}
}
