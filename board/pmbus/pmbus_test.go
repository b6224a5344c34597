package pmbus_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/nvrfw/nvr/board/pmbus"
	"github.com/nvrfw/nvr/board/pmbus/pmbustest"
	"github.com/nvrfw/nvr/board/smbus"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

func TestLinear11(t *testing.T) {
	for _, tc := range []struct {
		raw  uint16
		want float64
	}{
		{0x0000, 0},
		{pmbustest.L11(1000, -2), 250},
		{pmbustest.L11(-1, 0), -1},
		{pmbustest.L11(-1024, 15), -1024 * 32768},
		{pmbustest.L11(1023, -16), 1023.0 / 65536},
		{0xD3E8, 1000.0 / 64}, // e=-6 (11010), m=0x3E8
		{0x07FF, -1},          // e=0, m=-1
	} {
		if got := pmbus.Linear11(tc.raw); got != tc.want {
			t.Errorf("Linear11(%#04x) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestVoutModeAndLinear16(t *testing.T) {
	for _, tc := range []struct {
		mode    byte
		raw     uint16
		want    float64
		wantErr error
	}{
		{0x17, 12 << 9, 12, nil},    // exponent -9
		{0x1F, 24, 12, nil},         // exponent -1
		{0x10, 1, 1.0 / 65536, nil}, // exponent -16
		{0x0F, 1, 32768, nil},       // exponent 15
		{0x00, 5, 5, nil},
		{0x20, 0, 0, pmbus.ErrVoutMode}, // VID
		{0x40, 0, 0, pmbus.ErrVoutMode}, // direct
		{0x60, 0, 0, pmbus.ErrVoutMode}, // IEEE half
		{0xFF, 0, 0, pmbus.ErrVoutMode},
	} {
		exp, err := pmbus.ParseVoutMode(tc.mode)
		var got float64
		if err == nil {
			got, err = pmbus.Linear16(tc.raw, exp)
		}
		if !errors.Is(err, tc.wantErr) || got != tc.want {
			t.Errorf("mode %#02x raw %#04x: %v, %v; want %v, %v", tc.mode, tc.raw, got, err, tc.want, tc.wantErr)
		}
	}
	for _, exp := range []int{-17, 16, math.MaxInt} {
		if _, err := pmbus.Linear16(1, exp); !errors.Is(err, pmbus.ErrExponent) {
			t.Errorf("Linear16(1, %d) = %v, want ErrExponent", exp, err)
		}
	}
}

func names(cs []pmbus.Condition) string {
	var s []string
	for _, c := range cs {
		sev := "W"
		if c.Severity == pmbus.Fault {
			sev = "F"
		}
		s = append(s, c.Name+":"+sev)
	}
	return strings.Join(s, " ")
}

func TestDecodeStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		word   uint16
		detail map[byte]byte // missing: unreadable
		want   string
	}{
		{"clean", 0, nil, ""},
		{"vout overvoltage", 0x8000 | 0x0020, map[byte]byte{pmbus.CmdStatusVout: 0x80}, "VOUT_OV_FAULT:F"},
		{"vout summary unreadable falls back to word bits", 0x8000 | 0x0020, nil, "VOUT:W VOUT_OV_FAULT:F"},
		{"ac lost", 0x2000 | 0x0800 | 0x0040 | 0x0008, map[byte]byte{pmbus.CmdStatusInput: 0x18}, "OFF:F POWER_GOOD_NEGATED:F VIN_UV_FAULT:F OFF_LOW_VIN:F"},
		{"fan warning", 0x0400, map[byte]byte{pmbus.CmdStatusFans12: 0x20}, "FAN1_WARNING:W"},
		{"fan summary with zero detail", 0x0400, map[byte]byte{pmbus.CmdStatusFans12: 0}, "FANS:W"},
		{"overtemperature", 0x0004, map[byte]byte{pmbus.CmdStatusTemperature: 0xC0}, "OT_FAULT:F OT_WARNING:W"},
		{"cml and other", 0x0002 | 0x0200 | 0x1000, map[byte]byte{pmbus.CmdStatusCML: 0x80}, "CML_INVALID_COMMAND:W OTHER:W MFR_SPECIFIC:W"},
		{"iout", 0x4000 | 0x0010, map[byte]byte{pmbus.CmdStatusIout: 0x82}, "IOUT_OC_FAULT:F POUT_OP_FAULT:F"},
		{"busy unknown", 0x0180, nil, "BUSY:W UNKNOWN:W"},
		{"all bits", 0xFFFF, map[byte]byte{}, "OFF:F BUSY:W UNKNOWN:W POWER_GOOD_NEGATED:F VOUT:W IOUT_POUT:W INPUT:W TEMPERATURE:W CML:W FANS:W OTHER:W MFR_SPECIFIC:W VOUT_OV_FAULT:F IOUT_OC_FAULT:F VIN_UV_FAULT:F"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pmbus.DecodeStatus(tc.word, func(cmd byte) (byte, bool) {
				b, ok := tc.detail[cmd]
				return b, ok
			})
			if names(got) != tc.want {
				t.Errorf("DecodeStatus(%#04x) = %q, want %q", tc.word, names(got), tc.want)
			}
		})
	}
}

func TestASCII(t *testing.T) {
	for in, want := range map[string]string{
		"ACME":             "ACME",
		"PSU-550\x00\x00 ": "PSU-550",
		"A\x01B\xff\xff":   "A?B",
		"":                 "",
	} {
		if got := pmbus.ASCII([]byte(in)); got != want {
			t.Errorf("ASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPSURead(t *testing.T) {
	eio := syscall.EIO
	for _, tc := range []struct {
		name    string
		setup   func(p *pmbustest.PSU)
		present bool
		faults  string
		missing string
		problem string
		wantErr bool
	}{
		{name: "healthy", present: true},
		{name: "absent (NACK)", setup: func(p *pmbustest.PSU) { p.SetPresent(false) }},
		{name: "vanishes mid-read", setup: func(p *pmbustest.PSU) {
			p.SetError(pmbus.CmdReadIout, fmt.Errorf("ioctl: %w", smbus.ErrNoDevice))
		}},
		{name: "status word bus error", setup: func(p *pmbustest.PSU) { p.SetError(pmbus.CmdStatusWord, eio) }, wantErr: true},
		{name: "ac lost", present: true, faults: "OFF POWER_GOOD_NEGATED VIN_UV_FAULT OFF_LOW_VIN", setup: func(p *pmbustest.PSU) {
			p.SetWord(pmbus.CmdStatusWord, 0x2848)
			p.SetByte(pmbus.CmdStatusInput, 0x18)
		}},
		{name: "vout mode VID", present: true, missing: "VOUT", problem: "VOUT_MODE: pmbus: VOUT_MODE 0x20 selects VID", setup: func(p *pmbustest.PSU) {
			p.SetByte(pmbus.CmdVoutMode, 0x20)
		}},
		{name: "pout unsupported", present: true, missing: "POUT", problem: "POUT: input/output error", setup: func(p *pmbustest.PSU) {
			p.SetError(pmbus.CmdReadPout, eio)
		}},
		{name: "short reply", present: true, missing: "VIN", problem: "VIN: unexpected EOF", setup: func(p *pmbustest.PSU) {
			p.SetError(pmbus.CmdReadVin, io.ErrUnexpectedEOF)
		}},
		{name: "status detail NACKed mid-read", setup: func(p *pmbustest.PSU) {
			p.SetWord(pmbus.CmdStatusWord, 0x0400)
			p.SetError(pmbus.CmdStatusFans12, fmt.Errorf("ioctl: %w", smbus.ErrNoDevice))
		}},
		{name: "serial block too long", present: true, problem: "bad block length", setup: func(p *pmbustest.PSU) {
			p.SetBlock(pmbus.CmdMfrSerial, make([]byte, 33))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := pmbustest.NewHealthy()
			if tc.setup != nil {
				tc.setup(dev)
			}
			r, err := pmbus.NewPSU(dev).Read()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Read error %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, eio) || !strings.Contains(err.Error(), "STATUS_WORD") {
					t.Errorf("error %q should name STATUS_WORD and wrap EIO", err)
				}
				return
			}
			if r.Present != tc.present {
				t.Fatalf("Present = %v, want %v", r.Present, tc.present)
			}
			if !r.Present {
				if !reflect.DeepEqual(r, pmbus.Reading{}) {
					t.Errorf("absent reading not zero: %+v", r)
				}
				return
			}
			if got := strings.Join(r.Faults(), " "); got != tc.faults {
				t.Errorf("faults %q, want %q", got, tc.faults)
			}
			if got := strings.Join(r.Missing, " "); got != tc.missing {
				t.Errorf("missing %q, want %q", got, tc.missing)
			}
			if tc.problem == "" && len(r.Problems) > 0 || !strings.Contains(strings.Join(r.Problems, "; "), tc.problem) {
				t.Errorf("problems %q, want %q", r.Problems, tc.problem)
			}
			if tc.missing == "" && (r.VIn != 230 || r.VOut != 12 || r.IOut != 10 || r.POut != 120 || r.Temperature != 35) {
				t.Errorf("telemetry %+v", r)
			}
			if tc.problem == "" && r.Identity != (pmbus.Identity{Manufacturer: "ACME", Model: "PSU-550", Serial: "SN0001"}) {
				t.Errorf("identity %+v", r.Identity)
			}
		})
	}
}

func TestPSUIdentityCachedWhilePresent(t *testing.T) {
	dev := pmbustest.NewHealthy()
	psu := pmbus.NewPSU(dev)
	if _, err := psu.Read(); err != nil {
		t.Fatal(err)
	}
	first := dev.Reads()
	if _, err := psu.Read(); err != nil {
		t.Fatal(err)
	}
	if n := dev.Reads() - first; n != first-4 { // no VOUT_MODE, no 3 identity blocks
		t.Errorf("second read took %d transactions, first %d: want identity and VOUT_MODE cached", n, first)
	}
	dev.SetPresent(false)
	if r, _ := psu.Read(); r.Present {
		t.Fatal("present after pull")
	}
	dev.SetPresent(true)
	dev.SetBlock(pmbus.CmdMfrSerial, []byte("SN0002"))
	if r, _ := psu.Read(); r.Identity.Serial != "SN0002" {
		t.Errorf("identity after swap %+v: want re-read", r.Identity)
	}
}

// healthyOps is a recorded PMBus readout of a healthy PSU at 0x58 through
// plain I²C transfers (smbus.Periph): command byte written, reply read.
func healthyOps(serialLen byte) []i2ctest.IO {
	blk := func(s string) []byte {
		b := make([]byte, 33)
		b[0] = byte(len(s))
		copy(b[1:], s)
		return b
	}
	serial := blk("SN0001")
	serial[0] = serialLen
	return []i2ctest.IO{
		{Addr: 0x58, W: []byte{0x79}, R: []byte{0x00, 0x00}},
		{Addr: 0x58, W: []byte{0x88}, R: []byte{0xE6, 0x00}}, // 230 V
		{Addr: 0x58, W: []byte{0x20}, R: []byte{0x17}},
		{Addr: 0x58, W: []byte{0x8B}, R: []byte{0x00, 0x18}}, // 12 V
		{Addr: 0x58, W: []byte{0x8C}, R: []byte{0x14, 0xF8}}, // 10 A
		{Addr: 0x58, W: []byte{0x96}, R: []byte{0x78, 0x00}}, // 120 W
		{Addr: 0x58, W: []byte{0x8D}, R: []byte{0x46, 0xF8}}, // 35 °C
		{Addr: 0x58, W: []byte{0x99}, R: blk("ACME")},
		{Addr: 0x58, W: []byte{0x9A}, R: blk("PSU-550")},
		{Addr: 0x58, W: []byte{0x9E}, R: serial},
	}
}

func TestPSUReadPeriphPlayback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		serialLen byte
		serial    string
		problem   string
	}{
		{"healthy", 6, "SN0001", ""},
		{"block length over 32", 40, "", "block of 40 bytes (1..32 allowed)"},
		{"block length zero", 0, "", "block of 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: healthyOps(tc.serialLen), DontPanic: true}
			r, err := pmbus.NewPSU(&smbus.Periph{Bus: bus, Addr: 0x58}).Read()
			if err != nil {
				t.Fatal(err)
			}
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
			if !r.Present || r.VIn != 230 || r.VOut != 12 || r.IOut != 10 || r.POut != 120 || r.Temperature != 35 || r.Identity.Serial != tc.serial {
				t.Fatalf("reading %+v", r)
			}
			got := strings.Join(r.Problems, "; ")
			if tc.problem == "" && got != "" || !strings.Contains(got, tc.problem) {
				t.Fatalf("problems %q, want %q", got, tc.problem)
			}
		})
	}
}

// BenchmarkPSURead measures a cached readout (status, five telemetry words)
// over the in-memory fake: the CPU cost per PSU per poll, bus time excluded.
func BenchmarkPSURead(b *testing.B) {
	psu := pmbus.NewPSU(pmbustest.NewHealthy())
	for b.Loop() {
		if _, err := psu.Read(); err != nil {
			b.Fatal(err)
		}
	}
}
