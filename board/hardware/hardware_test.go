package hardware

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/pmbus"
	"github.com/nvrfw/nvr/board/profiles"
	"github.com/nvrfw/nvr/board/smbus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"
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

// stubRegisters loads a healthy PSU's PMBus registers into an i2c-stub
// chip (230 V in, 12 V out, 10 A, 120 W, 35 °C, identity ACME PSU-550).
// Block registers need the stub's block functionality; without it the
// identity stays empty.
func stubRegisters(t *testing.T, d *smbus.Dev, serial string) {
	t.Helper()
	for _, w := range []struct {
		cmd byte
		v   uint16
	}{
		{pmbus.CmdStatusWord, 0}, {pmbus.CmdReadVin, 0x00E6}, {pmbus.CmdReadVout, 12 << 9},
		{pmbus.CmdReadIout, 0xF814}, {pmbus.CmdReadPout, 0x0078}, {pmbus.CmdReadTemperature1, 0xF846},
	} {
		if err := d.WriteWordData(w.cmd, w.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.WriteByteData(pmbus.CmdVoutMode, 0x17); err != nil {
		t.Fatal(err)
	}
	for cmd, v := range map[byte]string{pmbus.CmdMfrID: "ACME", pmbus.CmdMfrModel: "PSU-550", pmbus.CmdMfrSerial: serial} {
		if err := d.WriteBlockData(cmd, []byte(v)); err != nil {
			t.Logf("identity not loaded (load i2c-stub with functionality=0x0f7f0000): %v", err)
			return
		}
	}
}

// simPull finds gpio-sim's pull attribute of a line of chip (gpiochipN).
func simPull(chip string, line int) (string, bool) {
	m, _ := filepath.Glob(fmt.Sprintf("/sys/devices/platform/gpio-sim.*/%s/sim_gpio%d/pull", chip, line))
	if len(m) != 1 {
		return "", false
	}
	return m[0], true
}

// gpioSimBays creates the qemu profile's gpio-sim chip (label nvr-bays, 8
// lines) through configfs unless it exists, and removes it after the test.
func gpioSimBays(t *testing.T) {
	t.Helper()
	const dev = "/sys/kernel/config/gpio-sim/nvr"
	if _, err := os.Stat("/sys/kernel/config/gpio-sim"); err != nil {
		t.Logf("gpio-sim configfs not mounted (%v): expecting the nvr-bays chip to exist", err)
		return
	}
	if _, err := os.Stat(dev); err == nil {
		return // made by the image test
	}
	steps := []struct{ path, value string }{
		{dev, ""}, {dev + "/bank0", ""},
		{dev + "/bank0/num_lines", "8"}, {dev + "/bank0/label", "nvr-bays"},
		{dev + "/live", "1"},
	}
	for _, st := range steps {
		var err error
		if st.value == "" {
			err = os.Mkdir(st.path, 0o755)
		} else {
			err = os.WriteFile(st.path, []byte(st.value), 0o644)
		}
		if err != nil {
			t.Fatalf("gpio-sim setup %s: %v", st.path, err)
		}
	}
	t.Cleanup(func() {
		_ = os.WriteFile(dev+"/live", []byte("0"), 0o644)
		_ = os.Remove(dev + "/bank0")
		_ = os.Remove(dev)
	})
}

// TestRealBoard binds a built-in profile on this machine and runs the
// Monitor on it. It runs with NVR_BOARD_PROFILE=NAME, or with the qemu
// profile where i2c-stub and gpio-sim are loaded (the QEMU guest:
// "modprobe i2c-stub chip_addr=0x58,0x59 functionality=0x0f7f0000",
// "modprobe gpio-sim" and configfs mounted on /sys/kernel/config: the test
// makes the nvr-bays chip itself). With the qemu profile it loads the
// stub's PMBus registers itself, then injects a PSU fault and, through
// gpio-sim's pull attribute, pulls and re-inserts BAY0, and checks the
// events.
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
	if name == "qemu" {
		gpioSimBays(t) // before host.Init: periph enumerates chips once
	}
	if _, err := host.Init(); err != nil {
		t.Fatal(err)
	}
	h, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	qemu := name == "qemu"
	if qemu {
		for i, psu := range h.PSUs {
			stubRegisters(t, psu.Bus.(*smbus.Dev), fmt.Sprintf("SN%04d", i+1))
		}
	}

	var mu sync.Mutex
	var events []string
	opts := h.MonitorOptions()
	opts.PollInterval = 50 * time.Millisecond
	opts.OnEvent = func(e board.Event) {
		t.Log(e)
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e.Kind.String()+" "+e.Source)
	}
	m, err := board.NewMonitor(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitEvent := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := slices.Contains(events, want)
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no %q event; events %q", want, events)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := m.Status()
		known := true
		for _, p := range st.PSUs {
			known = known && p.Known
		}
		for _, b := range st.Bays {
			known = known && b.Known
		}
		if known {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readouts never completed: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := m.Status()
	for _, p := range st.PSUs {
		t.Logf("PSU %s present=%v faults=%v vin=%.1f vout=%.2f id=%+v err=%s", p.Name, p.Present, p.Faults, p.Reading.VIn, p.Reading.VOut, p.Reading.Identity, p.Err)
		if qemu && (!p.Present || p.Reading.VIn != 230 || p.Reading.VOut != 12) {
			t.Errorf("PSU %s: %+v", p.Name, p)
		}
	}
	for _, b := range st.Bays {
		t.Logf("bay %s present=%v err=%s", b.Name, b.Present, b.Err)
	}
	for _, a := range st.Arrays {
		t.Logf("array %s: %v %s", a.Name, a.Health, a.Err)
	}
	if !qemu {
		return
	}
	psu1 := h.PSUs[0].Bus.(*smbus.Dev)
	if err := psu1.WriteWordData(pmbus.CmdStatusWord, 0x0840); err != nil { // OFF, POWER_GOOD#
		t.Fatal(err)
	}
	waitEvent("psu-faulted " + h.PSUs[0].Name)
	if err := psu1.WriteWordData(pmbus.CmdStatusWord, 0); err != nil {
		t.Fatal(err)
	}
	waitEvent("psu-fault-cleared " + h.PSUs[0].Name)

	line, ok := h.Bays[0].Present.(*gpioioctl.GPIOLine)
	if !ok {
		t.Fatalf("bay %s presence is not a gpioioctl line", h.Bays[0].Name)
	}
	var chip string
	for _, c := range gpioioctl.Chips {
		if c.Label() == p.Bays[0].Present.Chip || c.Name() == p.Bays[0].Present.Chip {
			chip = c.Name()
		}
	}
	pull, ok := simPull(chip, line.Number())
	if !ok {
		t.Fatalf("no gpio-sim pull attribute for %s line %d", chip, line.Number())
	}
	set := func(v string) {
		if err := os.WriteFile(pull, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set("pull-down") // drive present (active low)
	time.Sleep(200 * time.Millisecond)
	set("pull-up")
	waitEvent("bay-removed " + h.Bays[0].Name)
	set("pull-down")
	waitEvent("bay-inserted " + h.Bays[0].Name)
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
