//go:build linux

package watchdog

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFileSysOnRegularFile drives the real ioctl and write paths on a plain
// file: every ioctl fails with ENOTTY (mapped to ErrNotSupported) and the
// magic close writes 'V'.
func TestFileSysOnRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notawatchdog")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d := newDevice(path, &fileSys{f: f})
	if _, err := d.Info(); !errors.Is(err, ErrNotSupported) || !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("Info on a file = %v, want ErrNotSupported wrapping ENOTTY", err)
	}
	if _, err := d.SetTimeout(10 * time.Second); !errors.Is(err, ErrNotSupported) {
		t.Errorf("SetTimeout on a file = %v", err)
	}
	if err := d.KeepAlive(); err != nil { // falls back to the write ping
		t.Errorf("KeepAlive on a file = %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "1V" {
		t.Fatalf("file holds %q, %v; want the ping then the magic close: \"1V\"", b, err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
}
