package smbus

import (
	"encoding/binary"
	"errors"
	"fmt"

	"periph.io/x/conn/v3/i2c"
)

// BlockMax is the largest SMBus block: 32 data bytes after the count byte.
const BlockMax = 32

// Errors callers act on.
var (
	// ErrNoDevice: nothing acknowledged the address (NACK: ENXIO, ENODEV,
	// EREMOTEIO on Linux).
	ErrNoDevice = errors.New("smbus: no device acknowledged the address")
	// ErrBadBlock: a block read's count byte is 0 or more than BlockMax.
	ErrBadBlock = errors.New("smbus: bad block length")
	// ErrNotSupported: the adapter cannot do this transaction, or this
	// operating system has no SMBus ioctl.
	ErrNotSupported = errors.New("smbus: transaction not supported by the adapter")
)

// Periph reads SMBus registers through a periph.io I²C bus with plain I²C
// transfers: write the command byte, then read (repeated start). Block reads
// read the count byte and BlockMax data bytes in one transfer.
type Periph struct {
	Bus  i2c.Bus
	Addr uint16
}

func (p *Periph) tx(cmd byte, r []byte) error {
	if err := p.Bus.Tx(p.Addr, []byte{cmd}, r); err != nil {
		return fmt.Errorf("smbus %s addr %#02x command %#02x: %w", p.Bus, p.Addr, cmd, err)
	}
	return nil
}

// ReadByteData reads one byte register.
func (p *Periph) ReadByteData(cmd byte) (byte, error) {
	var b [1]byte
	if err := p.tx(cmd, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// ReadWordData reads one word register (SMBus words are little endian).
func (p *Periph) ReadWordData(cmd byte) (uint16, error) {
	var b [2]byte
	if err := p.tx(cmd, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b[:]), nil
}

// ReadBlockData reads a block register and returns its data bytes.
func (p *Periph) ReadBlockData(cmd byte) ([]byte, error) {
	var b [1 + BlockMax]byte
	if err := p.tx(cmd, b[:]); err != nil {
		return nil, err
	}
	return block(b[0], b[1:], cmd)
}

// WriteByteData writes one byte register.
func (p *Periph) WriteByteData(cmd, v byte) error {
	if err := p.Bus.Tx(p.Addr, []byte{cmd, v}, nil); err != nil {
		return fmt.Errorf("smbus %s addr %#02x command %#02x: %w", p.Bus, p.Addr, cmd, err)
	}
	return nil
}

// WriteWordData writes one word register (low byte first).
func (p *Periph) WriteWordData(cmd byte, v uint16) error {
	if err := p.Bus.Tx(p.Addr, []byte{cmd, byte(v), byte(v >> 8)}, nil); err != nil {
		return fmt.Errorf("smbus %s addr %#02x command %#02x: %w", p.Bus, p.Addr, cmd, err)
	}
	return nil
}

// WriteBlockData writes a block register of 1..BlockMax bytes (count byte
// first).
func (p *Periph) WriteBlockData(cmd byte, data []byte) error {
	if len(data) == 0 || len(data) > BlockMax {
		return fmt.Errorf("smbus: command %#02x: block of %d bytes: %w", cmd, len(data), ErrBadBlock)
	}
	w := append([]byte{cmd, byte(len(data))}, data...)
	if err := p.Bus.Tx(p.Addr, w, nil); err != nil {
		return fmt.Errorf("smbus %s addr %#02x command %#02x: %w", p.Bus, p.Addr, cmd, err)
	}
	return nil
}

// block checks a block's count byte and returns a copy of its data.
func block(n byte, data []byte, cmd byte) ([]byte, error) {
	if n == 0 || int(n) > BlockMax || int(n) > len(data) {
		return nil, fmt.Errorf("smbus: command %#02x: block of %d bytes (1..%d allowed): %w", cmd, n, BlockMax, ErrBadBlock)
	}
	return append([]byte(nil), data[:n]...), nil
}
