package smbus_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/board/smbus"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

func TestPeriphReads(t *testing.T) {
	long := make([]byte, 33)
	long[0] = 33
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x59, W: []byte{0x78}, R: []byte{0x42}},
		{Addr: 0x59, W: []byte{0x79}, R: []byte{0x34, 0x12}},
		{Addr: 0x59, W: []byte{0x99}, R: append([]byte{3, 'A', 'B', 'C'}, make([]byte, 29)...)},
		{Addr: 0x59, W: []byte{0x9A}, R: long},
	}}
	d := &smbus.Periph{Bus: bus, Addr: 0x59}
	if b, err := d.ReadByteData(0x78); err != nil || b != 0x42 {
		t.Errorf("ReadByteData = %#x, %v", b, err)
	}
	if w, err := d.ReadWordData(0x79); err != nil || w != 0x1234 {
		t.Errorf("ReadWordData = %#x, %v (SMBus words are little endian)", w, err)
	}
	if b, err := d.ReadBlockData(0x99); err != nil || string(b) != "ABC" {
		t.Errorf("ReadBlockData = %q, %v", b, err)
	}
	if _, err := d.ReadBlockData(0x9A); !errors.Is(err, smbus.ErrBadBlock) {
		t.Errorf("33-byte block: %v, want ErrBadBlock", err)
	}
	if _, err := d.ReadByteData(0x00); err == nil || !strings.Contains(err.Error(), "command 0x00") {
		t.Errorf("unexpected transfer error %v should name the command", err)
	}
}

func TestPeriphWrites(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x58, W: []byte{0x20, 0x17}},
		{Addr: 0x58, W: []byte{0x79, 0x40, 0x08}},
		{Addr: 0x58, W: []byte{0x99, 4, 'A', 'C', 'M', 'E'}},
	}}
	d := &smbus.Periph{Bus: bus, Addr: 0x58}
	if err := d.WriteByteData(0x20, 0x17); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteWordData(0x79, 0x0840); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteBlockData(0x99, []byte("ACME")); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteBlockData(0x9A, make([]byte, 33)); !errors.Is(err, smbus.ErrBadBlock) {
		t.Fatalf("33-byte block write: %v", err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenMissingAdapter(t *testing.T) {
	_, err := smbus.Open(4095, 0x58, smbus.Options{})
	if err == nil {
		t.Fatal("opened /dev/i2c-4095")
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, smbus.ErrNotSupported) {
		t.Fatalf("err = %v, want not-exist (Linux) or not-supported", err)
	}
	if _, err := smbus.Open(0, 0x80, smbus.Options{}); err == nil {
		t.Fatal("accepted address 0x80")
	}
}

// stubDevice finds an i2c-stub adapter and its first chip address, as the
// QEMU guest loads it ("modprobe i2c-stub chip_addr=0x58,0x59").
func stubDevice() (string, bool) {
	names, _ := filepath.Glob("/sys/bus/i2c/devices/i2c-*/name")
	addrs, err := os.ReadFile("/sys/module/i2c_stub/parameters/chip_addr")
	if err != nil {
		return "", false
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(addrs)), ",")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err == nil && strings.TrimSpace(string(b)) == "SMBus stub driver" {
			bus := strings.TrimPrefix(filepath.Base(filepath.Dir(n)), "i2c-")
			return bus + ":" + first, true
		}
	}
	return "", false
}

// TestRealAdapter reads a real SMBus device: NVR_SMBUS_DEV=BUS:ADDR, or an
// i2c-stub chip when the module is loaded (the QEMU guest).
func TestRealAdapter(t *testing.T) {
	spec := os.Getenv("NVR_SMBUS_DEV")
	if spec == "" {
		var ok bool
		if spec, ok = stubDevice(); !ok {
			t.Skip("no SMBus device to test: no i2c-stub loaded and NVR_SMBUS_DEV=BUS:ADDR unset")
		}
	}
	b, a, ok := strings.Cut(spec, ":")
	bus, err1 := strconv.Atoi(b)
	addr, err2 := strconv.ParseUint(a, 0, 7)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("device %q: want BUS:ADDR", spec)
	}
	d, err := smbus.Open(bus, uint16(addr), smbus.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := d.ReadWordData(0x79)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v STATUS_WORD %#04x", d, w)
	if err := d.WriteByteData(0x20, 0x17); err != nil {
		t.Fatal(err)
	}
	if b, err := d.ReadByteData(0x20); err != nil || b != 0x17 {
		t.Fatalf("VOUT_MODE read back %#x, %v; wrote 0x17", b, err)
	}
	if err := d.WriteWordData(0x88, 0x00E6); err != nil {
		t.Fatal(err)
	}
	if w, err := d.ReadWordData(0x88); err != nil || w != 0x00E6 {
		t.Fatalf("READ_VIN read back %#x, %v; wrote 0xe6", w, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadByteData(0x20); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
