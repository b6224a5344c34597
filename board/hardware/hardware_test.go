package hardware

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/profiles"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/host/v3"
)

// fakeChip is a GPIO chip of gpiotest pins named by offset and by name.
type fakeChip struct {
	name, label string
	pins        map[string]*gpiotest.Pin
}

func (c *fakeChip) Name() string  { return c.name }
func (c *fakeChip) Label() string { return c.label }

func (c *fakeChip) line(spec string) (gpio.PinIO, error) {
	if p, ok := c.pins[spec]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("chip %s has no line %q", c.name, spec)
}

func TestBindBays(t *testing.T) {
	p, err := board.ParseProfile("t", []byte(`model t
bay A present=gpiochip3:0 fault-led=leds:F0 locate-led=leds:9
bay B present=bays:1 present-active=high
bay C present=gpiochip3:7
bay D present=bays:2 locate-led=nochip:1
`))
	if err != nil {
		t.Fatal(err)
	}
	pins := map[string]*gpiotest.Pin{}
	mk := func(n string) *gpiotest.Pin { p := &gpiotest.Pin{N: n}; pins[n] = p; return p }
	chips := []chip{
		&fakeChip{"gpiochip3", "bays", map[string]*gpiotest.Pin{"0": mk("p0"), "1": mk("p1"), "2": mk("p2")}},
		&fakeChip{"gpiochip4", "leds", map[string]*gpiotest.Pin{"F0": mk("f0"), "9": mk("l9")}},
	}
	bays, errs := bindBays(p.Bays, chips)
	var names []string
	for _, b := range bays {
		names = append(names, b.Name)
	}
	if strings.Join(names, ",") != "A,B,D" {
		t.Fatalf("bound bays %v, want A,B,D (C's presence line is missing)", names)
	}
	if bays[0].Present != pins["p0"] || bays[0].FaultLED != pins["f0"] || bays[0].LocateLED != pins["l9"] {
		t.Errorf("bay A bound to %v %v %v", bays[0].Present, bays[0].FaultLED, bays[0].LocateLED)
	}
	if bays[1].Present != pins["p1"] || !bays[1].PresentActiveHigh || bays[1].FaultLED != nil {
		t.Errorf("bay B bound to %+v (by chip label)", bays[1])
	}
	if bays[2].LocateLED != nil {
		t.Errorf("bay D has a locate LED on a missing chip")
	}
	if len(errs) != 2 {
		t.Fatalf("errors %v, want 2 (C presence, D locate)", errs)
	}
	for i, want := range []string{`bay C presence gpiochip3:7: chip gpiochip3 has no line "7"`, `bay D locate LED nochip:1: no GPIO chip named or labelled "nochip"`} {
		if !errors.Is(errs[i], ErrUnbound) || !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d = %v, want %q", i, errs[i], want)
		}
	}
}

func TestOpenWithoutDevices(t *testing.T) {
	p, err := board.ParseProfile("t", []byte("model t\npsu P bus=4000 addr=0x58\nbay B present=gpiochip9:0\nraid md0 role=recording\n"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(p, Options{Chips: nil})
	if !errors.Is(err, ErrUnbound) || !strings.Contains(err.Error(), "psu P") || !strings.Contains(err.Error(), "bay B") {
		t.Fatalf("Open error %v: want both unbound parts named", err)
	}
	if len(h.PSUs) != 0 || len(h.Bays) != 0 || h.Recording != "md0" || len(h.Arrays) != 1 {
		t.Fatalf("hardware %+v", h)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRealBoard binds a built-in profile on this machine and runs the
// Monitor for a few polls. It runs with NVR_BOARD_PROFILE=NAME, or with the
// qemu profile where i2c-stub and gpio-sim are loaded (the QEMU guest).
func TestRealBoard(t *testing.T) {
	name := os.Getenv("NVR_BOARD_PROFILE")
	if name == "" {
		_, stub := os.Stat("/sys/module/i2c_stub")
		_, sim := os.Stat("/sys/module/gpio_sim")
		if stub != nil || sim != nil {
			t.Skip("no board hardware to test: i2c-stub and gpio-sim not loaded, NVR_BOARD_PROFILE unset")
		}
		name = "qemu"
	}
	text, err := profiles.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := board.ParseProfile(name, text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := host.Init(); err != nil {
		t.Fatal(err)
	}
	h, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	opts := h.MonitorOptions()
	opts.PollInterval = 100 * time.Millisecond
	m, err := board.NewMonitor(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := m.Status()
	for _, p := range st.PSUs {
		if !p.Known || p.Err != "" {
			t.Errorf("PSU %s: %+v", p.Name, p)
		}
		t.Logf("PSU %s present=%v faults=%v vin=%.1f vout=%.2f", p.Name, p.Present, p.Faults, p.Reading.VIn, p.Reading.VOut)
	}
	for _, b := range st.Bays {
		if !b.Known || b.Err != "" {
			t.Errorf("bay %s: %+v", b.Name, b)
		}
	}
	for _, a := range st.Arrays {
		t.Logf("array %s: %v %+v", a.Name, a.Health, a.Err)
	}
	for _, e := range st.Events {
		t.Log(e)
	}
}

func TestAdapterBus(t *testing.T) {
	sys := fstest.MapFS{
		"bus/i2c/devices/i2c-0/name":  {Data: []byte("SMBus I801 adapter at f040\n")},
		"bus/i2c/devices/i2c-1/name":  {Data: []byte("SMBus stub driver\n")},
		"bus/i2c/devices/i2c-2/name":  {Data: []byte("i915 gmbus dpb\n")},
		"bus/i2c/devices/i2c-3/name":  {Data: []byte("i915 gmbus dpc\n")},
		"bus/i2c/devices/0-0058/name": {Data: []byte("pmbus\n")},
	}
	for _, tc := range []struct {
		prefix string
		bus    int
		err    string
	}{
		{"SMBus_I801", 0, ""},
		{"SMBus_stub", 1, ""},
		{"i915_gmbus", 0, "ambiguous: buses [2 3]"},
		{"nvidia", 0, `no I2C adapter named "nvidia"`},
	} {
		bus, err := AdapterBus(sys, tc.prefix)
		if tc.err == "" && (err != nil || bus != tc.bus) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("AdapterBus(%q) = %d, %v; want %d, %q", tc.prefix, bus, err, tc.bus, tc.err)
		}
	}
	p, _ := board.ParseProfile("t", []byte("model t\npsu P adapter=nvidia addr=0x58\n"))
	if _, err := Open(p, Options{Sysfs: sys}); !errors.Is(err, ErrUnbound) || !strings.Contains(err.Error(), "psu P: no I2C adapter") {
		t.Errorf("Open with a missing adapter: %v", err)
	}
}
