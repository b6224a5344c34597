package pmbus_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/nvrfw/nvr/board/pmbus"
	"github.com/nvrfw/nvr/board/smbus"
	"periph.io/x/conn/v3/physic"
)

// scriptBus is an i2c.Bus whose replies come from fuzz input: per transfer,
// one control byte (0 mod 5: NACK, 1 mod 5: bus error, else success) then
// as many reply bytes as the transfer reads (zeros once input runs out).
type scriptBus struct{ in []byte }

func (s *scriptBus) String() string                  { return "script" }
func (s *scriptBus) SetSpeed(physic.Frequency) error { return nil }

func (s *scriptBus) next() byte {
	if len(s.in) == 0 {
		return 0xff
	}
	b := s.in[0]
	s.in = s.in[1:]
	return b
}

func (s *scriptBus) Tx(addr uint16, w, r []byte) error {
	switch s.next() % 5 {
	case 0:
		return fmt.Errorf("script: %w", smbus.ErrNoDevice)
	case 1:
		return fmt.Errorf("script: bus error")
	}
	for i := range r {
		r[i] = s.next()
	}
	return nil
}

func FuzzPSURead(f *testing.F) {
	f.Add([]byte{2, 0, 0})
	f.Add([]byte{2, 0xff, 0xff, 2, 0x80, 2, 0x40, 2, 0x20, 2, 0x04, 2, 0x02, 2, 0x08, 2, 0xE6, 0, 2, 0x17})
	f.Add([]byte{2, 0, 0, 2, 1, 2, 2, 0x60, 2, 1, 1, 3, 40, 'A'})
	f.Fuzz(func(t *testing.T, in []byte) {
		psu := pmbus.NewPSU(&smbus.Periph{Bus: &scriptBus{in: in}, Addr: 0x58})
		for i := 0; i < 2; i++ { // a second read uses the caches
			r, err := psu.Read()
			if err != nil {
				continue
			}
			if !r.Present && (len(r.Conditions) > 0 || r.StatusWord != 0) {
				t.Fatalf("absent PSU with status: %+v", r)
			}
			for _, v := range []float64{r.VIn, r.VOut, r.IOut, r.POut, r.Temperature} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("non-finite telemetry %+v", r)
				}
			}
			seen := map[string]bool{}
			for _, c := range r.Conditions {
				if c.Name == "" || seen[c.Name] || (c.Severity != pmbus.Fault && c.Severity != pmbus.Warning) {
					t.Fatalf("bad conditions %+v", r.Conditions)
				}
				seen[c.Name] = true
			}
			for _, s := range []string{r.Identity.Manufacturer, r.Identity.Model, r.Identity.Serial} {
				if len(s) > smbus.BlockMax {
					t.Fatalf("identity string of %d bytes", len(s))
				}
			}
		}
	})
}

func FuzzLinear(f *testing.F) {
	f.Add(uint16(0xD3E8), byte(0x17))
	f.Add(uint16(0xFFFF), byte(0x0F))
	f.Add(uint16(0x0001), byte(0x40))
	f.Fuzz(func(t *testing.T, raw uint16, mode byte) {
		if v := pmbus.Linear11(raw); math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1024*32768 {
			t.Fatalf("Linear11(%#04x) = %v", raw, v)
		}
		exp, err := pmbus.ParseVoutMode(mode)
		if err != nil {
			if mode>>5 == 0 {
				t.Fatalf("linear mode %#02x rejected: %v", mode, err)
			}
			return
		}
		v, err := pmbus.Linear16(raw, exp)
		if err != nil || v < 0 || math.IsInf(v, 0) || v != float64(raw)*math.Pow(2, float64(exp)) {
			t.Fatalf("Linear16(%#04x, %d) = %v, %v", raw, exp, v, err)
		}
	})
}
