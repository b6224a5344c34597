// Package pmbustest provides PSU, a hand-written fake PMBus power supply
// implementing pmbus.SMBus: a register file the test edits, presence, per-
// command errors and a read delay. It is safe for concurrent use.
package pmbustest

import (
	"fmt"
	"sync"

	"github.com/nvrfw/nvr/board/pmbus"
	"github.com/nvrfw/nvr/board/smbus"
)

// PSU is a fake PMBus power supply.
type PSU struct {
	mu      sync.Mutex
	absent  bool
	bytes   map[byte]byte
	words   map[byte]uint16
	blocks  map[byte][]byte
	errs    map[byte]error
	release chan struct{}
	reads   int
}

// NewHealthy returns a present, fault-free 12 V PSU: VOUT_MODE exponent -9,
// VIN 230 V, VOUT 12 V, IOUT 10 A, POUT 120 W, 35 °C, identity ACME/PSU-550/SN0001.
func NewHealthy() *PSU {
	return &PSU{
		bytes: map[byte]byte{pmbus.CmdVoutMode: 0x17}, // linear, exponent -9
		words: map[byte]uint16{
			pmbus.CmdStatusWord:       0,
			pmbus.CmdReadVin:          L11(230, 0), // 230 V
			pmbus.CmdReadVout:         12 << 9,     // 12 V at 2^-9
			pmbus.CmdReadIout:         L11(20, -1), // 10 A
			pmbus.CmdReadPout:         L11(120, 0), // 120 W
			pmbus.CmdReadTemperature1: L11(70, -1), // 35 °C
		},
		blocks: map[byte][]byte{
			pmbus.CmdMfrID:     []byte("ACME"),
			pmbus.CmdMfrModel:  []byte("PSU-550"),
			pmbus.CmdMfrSerial: []byte("SN0001"),
		},
		errs: map[byte]error{},
	}
}

// L11 encodes m * 2^e as LINEAR11 (m in -1024..1023, e in -16..15).
func L11(m, e int) uint16 {
	return uint16(e&0x1f)<<11 | uint16(m&0x7ff)
}

// SetPresent plugs the PSU in or pulls it out: absent, every read fails with
// smbus.ErrNoDevice.
func (p *PSU) SetPresent(present bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.absent = !present
}

// SetByte sets a byte register.
func (p *PSU) SetByte(cmd, v byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes[cmd] = v
}

// SetWord sets a word register.
func (p *PSU) SetWord(cmd byte, v uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.words[cmd] = v
}

// SetBlock sets a block register.
func (p *PSU) SetBlock(cmd byte, v []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocks[cmd] = append([]byte(nil), v...)
}

// SetError makes reads of cmd fail with err (nil: succeed again).
func (p *PSU) SetError(cmd byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.errs, cmd)
	} else {
		p.errs[cmd] = err
	}
}

// Stall makes every read block until Unstall (a hung bus).
func (p *PSU) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.release == nil {
		p.release = make(chan struct{})
	}
}

// Unstall releases blocked and later reads.
func (p *PSU) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.release != nil {
		close(p.release)
		p.release = nil
	}
}

// Reads returns how many reads were attempted.
func (p *PSU) Reads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads
}

// begin waits out a stall, then checks presence and injected errors.
func (p *PSU) begin(cmd byte) error {
	p.mu.Lock()
	p.reads++
	rel := p.release
	p.mu.Unlock()
	if rel != nil {
		<-rel
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.absent {
		return fmt.Errorf("pmbustest: command %#02x: %w", cmd, smbus.ErrNoDevice)
	}
	return p.errs[cmd]
}

// ReadByteData implements pmbus.SMBus.
func (p *PSU) ReadByteData(cmd byte) (byte, error) {
	if err := p.begin(cmd); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.bytes[cmd]
	if !ok {
		return 0, fmt.Errorf("pmbustest: no byte register %#02x", cmd)
	}
	return v, nil
}

// ReadWordData implements pmbus.SMBus.
func (p *PSU) ReadWordData(cmd byte) (uint16, error) {
	if err := p.begin(cmd); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.words[cmd]
	if !ok {
		return 0, fmt.Errorf("pmbustest: no word register %#02x", cmd)
	}
	return v, nil
}

// ReadBlockData implements pmbus.SMBus.
func (p *PSU) ReadBlockData(cmd byte) ([]byte, error) {
	if err := p.begin(cmd); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.blocks[cmd]
	if !ok {
		return nil, fmt.Errorf("pmbustest: no block register %#02x", cmd)
	}
	if len(v) == 0 || len(v) > smbus.BlockMax {
		return nil, fmt.Errorf("pmbustest: command %#02x: block of %d bytes: %w", cmd, len(v), smbus.ErrBadBlock)
	}
	return append([]byte(nil), v...), nil
}
