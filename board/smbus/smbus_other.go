//go:build !linux

package smbus

import (
	"fmt"
	"time"
)

// Options configure Open.
type Options struct {
	// Timeout bounds one transaction. Unused off Linux.
	Timeout time.Duration
}

// Dev is an SMBus device; off Linux none can be opened.
type Dev struct{}

// Open fails with ErrNotSupported: the SMBus ioctl is Linux's.
func Open(bus int, addr uint16, opts Options) (*Dev, error) {
	return nil, fmt.Errorf("smbus: open /dev/i2c-%d: %w", bus, ErrNotSupported)
}

// ReadByteData fails with ErrNotSupported.
func (d *Dev) ReadByteData(cmd byte) (byte, error) { return 0, ErrNotSupported }

// ReadWordData fails with ErrNotSupported.
func (d *Dev) ReadWordData(cmd byte) (uint16, error) { return 0, ErrNotSupported }

// ReadBlockData fails with ErrNotSupported.
func (d *Dev) ReadBlockData(cmd byte) ([]byte, error) { return nil, ErrNotSupported }

// WriteByteData fails with ErrNotSupported.
func (d *Dev) WriteByteData(cmd, v byte) error { return ErrNotSupported }

// WriteWordData fails with ErrNotSupported.
func (d *Dev) WriteWordData(cmd byte, v uint16) error { return ErrNotSupported }

// WriteBlockData fails with ErrNotSupported.
func (d *Dev) WriteBlockData(cmd byte, data []byte) error { return ErrNotSupported }

// Close does nothing.
func (d *Dev) Close() error { return nil }
