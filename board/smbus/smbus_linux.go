//go:build linux

package smbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux i2c-dev ioctls and SMBus transaction kinds (include/uapi/linux/i2c*.h).
const (
	ioctlTimeout = 0x0702 // I2C_TIMEOUT: adapter timeout in units of 10 ms
	ioctlSlave   = 0x0703 // I2C_SLAVE: address for later transactions
	ioctlFuncs   = 0x0705 // I2C_FUNCS: the adapter's functionality mask
	ioctlSMBus   = 0x0720 // I2C_SMBUS: one SMBus transaction

	smbusRead  = 1
	smbusWrite = 0

	sizeByteData  = 2
	sizeWordData  = 3
	sizeBlockData = 5

	// FuncReadByteData and friends are bits of the I2C_FUNCS mask.
	funcReadByteData  = 0x00080000
	funcReadWordData  = 0x00200000
	funcReadBlockData = 0x01000000

	funcWriteByteData  = 0x00100000
	funcWriteWordData  = 0x00400000
	funcWriteBlockData = 0x02000000
)

// Options configure Open.
type Options struct {
	// Timeout bounds one transaction in the adapter driver (I2C_TIMEOUT,
	// rounded up to 10 ms). Default: the driver's own (often 1 s or more).
	Timeout time.Duration
}

// Dev is one SMBus device, an address on /dev/i2c-N, read with the
// I2C_SMBUS ioctl.
type Dev struct {
	path  string
	addr  uint16
	funcs uint64

	mu     sync.Mutex
	f      *os.File
	closed bool
}

// Open opens /dev/i2c-bus for the device at addr (7-bit). It fails when the
// adapter is missing (os.ErrNotExist) or a kernel driver owns the address
// (EBUSY); it does not talk to the device.
func Open(bus int, addr uint16, opts Options) (*Dev, error) {
	path := fmt.Sprintf("/dev/i2c-%d", bus)
	if addr < 0x03 || addr > 0x77 {
		return nil, fmt.Errorf("smbus %s: address %#x outside 0x03..0x77", path, addr)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("smbus: %w", err)
	}
	d := &Dev{path: path, addr: addr, f: f}
	fail := func(what string, err error) (*Dev, error) {
		f.Close()
		return nil, fmt.Errorf("smbus %s addr %#02x: %s: %w", path, addr, what, err)
	}
	var funcs uint64
	if err := d.ioctl(ioctlFuncs, uintptr(unsafe.Pointer(&funcs))); err != nil {
		return fail("I2C_FUNCS", err)
	}
	d.funcs = funcs
	if err := d.ioctl(ioctlSlave, uintptr(addr)); err != nil {
		return fail("I2C_SLAVE", err)
	}
	if opts.Timeout > 0 {
		ticks := (opts.Timeout + 10*time.Millisecond - 1) / (10 * time.Millisecond)
		if err := d.ioctl(ioctlTimeout, uintptr(ticks)); err != nil {
			return fail("I2C_TIMEOUT", err)
		}
	}
	return d, nil
}

// String names the device, e.g. "/dev/i2c-0@0x58".
func (d *Dev) String() string { return fmt.Sprintf("%s@%#02x", d.path, d.addr) }

func (d *Dev) ioctl(req, arg uintptr) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		for {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, arg)
			if errno != unix.EINTR {
				return
			}
		}
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// ioctlData is struct i2c_smbus_ioctl_data; Go lays it out as C does.
type ioctlData struct {
	readWrite uint8
	command   uint8
	size      uint32
	data      *[BlockMax + 2]byte
}

func (d *Dev) transfer(rw uint8, cmd byte, size uint32, need uint64, buf *[BlockMax + 2]byte) error {
	if d.funcs&need == 0 {
		return fmt.Errorf("smbus %s command %#02x: %w", d, cmd, ErrNotSupported)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("smbus %s: %w", d, os.ErrClosed)
	}
	arg := ioctlData{readWrite: rw, command: cmd, size: size, data: buf}
	err := d.ioctl(ioctlSMBus, uintptr(unsafe.Pointer(&arg)))
	runtime.KeepAlive(&arg)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EREMOTEIO) {
			return fmt.Errorf("smbus %s command %#02x: %w (%w)", d, cmd, ErrNoDevice, err)
		}
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("smbus %s command %#02x: %w (%w)", d, cmd, ErrNotSupported, err)
		}
		return fmt.Errorf("smbus %s command %#02x: %w", d, cmd, err)
	}
	return nil
}

// ReadByteData reads one byte register.
func (d *Dev) ReadByteData(cmd byte) (byte, error) {
	var buf [BlockMax + 2]byte
	if err := d.transfer(smbusRead, cmd, sizeByteData, funcReadByteData, &buf); err != nil {
		return 0, err
	}
	return buf[0], nil
}

// ReadWordData reads one word register.
func (d *Dev) ReadWordData(cmd byte) (uint16, error) {
	var buf [BlockMax + 2]byte
	if err := d.transfer(smbusRead, cmd, sizeWordData, funcReadWordData, &buf); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint16(buf[:2]), nil
}

// ReadBlockData reads a block register and returns its data bytes.
func (d *Dev) ReadBlockData(cmd byte) ([]byte, error) {
	var buf [BlockMax + 2]byte
	if err := d.transfer(smbusRead, cmd, sizeBlockData, funcReadBlockData, &buf); err != nil {
		return nil, err
	}
	return block(buf[0], buf[1:], cmd)
}

// WriteByteData writes one byte register.
func (d *Dev) WriteByteData(cmd, v byte) error {
	var buf [BlockMax + 2]byte
	buf[0] = v
	return d.transfer(smbusWrite, cmd, sizeByteData, funcWriteByteData, &buf)
}

// WriteWordData writes one word register.
func (d *Dev) WriteWordData(cmd byte, v uint16) error {
	var buf [BlockMax + 2]byte
	binary.NativeEndian.PutUint16(buf[:2], v)
	return d.transfer(smbusWrite, cmd, sizeWordData, funcWriteWordData, &buf)
}

// WriteBlockData writes a block register of 1..BlockMax bytes.
func (d *Dev) WriteBlockData(cmd byte, data []byte) error {
	if len(data) == 0 || len(data) > BlockMax {
		return fmt.Errorf("smbus %s command %#02x: block of %d bytes: %w", d, cmd, len(data), ErrBadBlock)
	}
	var buf [BlockMax + 2]byte
	buf[0] = byte(len(data))
	copy(buf[1:], data)
	return d.transfer(smbusWrite, cmd, sizeBlockData, funcWriteBlockData, &buf)
}

// Close closes the device file. Idempotent.
func (d *Dev) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.f.Close()
}
