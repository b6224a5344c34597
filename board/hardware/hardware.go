// Package hardware binds a board profile to this machine's devices: each
// PSU to its /dev/i2c-N address (smbus.Open, the I2C_SMBUS ioctl), each
// bay's lines to GPIO character-device lines (periph.io host/v3/gpioioctl,
// whose chips periph enumerates once at host.Init: call host.Init in main
// before Open). The result feeds board.NewMonitor. It needs no build tag:
// off Linux, or where a bus or chip is missing, Open reports which parts of
// the profile it could not bind.
//
// Open is meant to be called once at startup; a Hardware is safe to Close
// from any goroutine, once the Monitor using it has returned.
package hardware

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/smbus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// DefaultSMBusTimeout bounds one SMBus transaction (I2C_TIMEOUT).
const DefaultSMBusTimeout = 200 * time.Millisecond

// Options configure Open.
type Options struct {
	// SMBusTimeout bounds one PSU register read in the adapter driver.
	// Default DefaultSMBusTimeout (200ms).
	SMBusTimeout time.Duration
	// Chips are the GPIO chips to resolve lines on. Default: gpioioctl.Chips
	// (filled by host.Init).
	Chips []*gpioioctl.GPIOChip
	// Sysfs is the sysfs root, where adapter= names are looked up. Default
	// os.DirFS("/sys").
	Sysfs fs.FS
}

// Hardware is a profile bound to devices.
type Hardware struct {
	// PSUs and Bays are what could be bound, in profile order.
	PSUs []board.PSU
	Bays []board.Bay
	// Arrays and Recording come from the profile's raid directives.
	Arrays    []string
	Recording string

	closeOnce sync.Once
	closeErr  error
	devs      []*smbus.Dev
	lines     []*gpioioctl.GPIOLine
}

// ErrUnbound wraps every part of the profile Open could not bind.
var ErrUnbound = errors.New("hardware: profile entry not bound to a device")

// chip is the part of a GPIO chip Open resolves lines on; *gpioioctl.GPIOChip
// implements it through chipAdapter, tests with a fake.
type chip interface {
	Name() string
	Label() string
	line(spec string) (gpio.PinIO, error)
}

type chipAdapter struct{ c *gpioioctl.GPIOChip }

func (a chipAdapter) Name() string  { return a.c.Name() }
func (a chipAdapter) Label() string { return a.c.Label() }

func (a chipAdapter) line(spec string) (gpio.PinIO, error) {
	var l *gpioioctl.GPIOLine
	if n, ok := (board.GPIOLine{Chip: "x", Line: spec}).Offset(); ok {
		if n < a.c.LineCount() {
			l = a.c.Lines()[n]
		}
	} else {
		l = a.c.ByName(spec)
	}
	if l == nil {
		return nil, fmt.Errorf("chip %s (%s) has no line %q (%d lines)", a.c.Name(), a.c.Label(), spec, a.c.LineCount())
	}
	return l, nil
}

// Open binds p to devices. It returns a Hardware with every part it could
// bind and, when some could not, an error wrapping ErrUnbound that names
// each (the caller logs it and runs the Monitor on the rest: a missing
// sensor must not stop recording).
func Open(p *board.Profile, opts Options) (*Hardware, error) {
	if opts.SMBusTimeout == 0 {
		opts.SMBusTimeout = DefaultSMBusTimeout
	}
	if opts.Chips == nil {
		opts.Chips = gpioioctl.Chips
	}
	chips := make([]chip, len(opts.Chips))
	for i, c := range opts.Chips {
		chips[i] = chipAdapter{c}
	}
	h := &Hardware{}
	var errs []error
	if opts.Sysfs == nil {
		opts.Sysfs = os.DirFS("/sys")
	}
	for _, s := range p.PSUs {
		bus := s.Bus
		if s.Adapter != "" {
			n, err := AdapterBus(opts.Sysfs, s.Adapter)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: psu %s: %w", ErrUnbound, s.Name, err))
				continue
			}
			bus = n
		}
		d, err := smbus.Open(bus, s.Addr, smbus.Options{Timeout: opts.SMBusTimeout})
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: psu %s: %w", ErrUnbound, s.Name, err))
			continue
		}
		h.devs = append(h.devs, d)
		h.PSUs = append(h.PSUs, board.PSU{Name: s.Name, Bus: d})
	}
	bays, berrs := bindBays(p.Bays, chips)
	h.Bays = bays
	errs = append(errs, berrs...)
	for _, b := range bays {
		for _, pin := range []gpio.PinIO{b.Present, b.FaultLED, b.LocateLED} {
			if l, ok := pin.(*gpioioctl.GPIOLine); ok {
				h.lines = append(h.lines, l)
			}
		}
	}
	for _, a := range p.Arrays {
		h.Arrays = append(h.Arrays, a.Name)
		if a.Recording {
			h.Recording = a.Name
		}
	}
	return h, errors.Join(errs...)
}

// AdapterBus returns the number N of the one I2C adapter
// (/sys/bus/i2c/devices/i2c-N) whose name starts with prefix, '_' in prefix
// standing for a blank.
func AdapterBus(sys fs.FS, prefix string) (int, error) {
	want := strings.ReplaceAll(prefix, "_", " ")
	paths, err := fs.Glob(sys, "bus/i2c/devices/i2c-*/name")
	if err != nil {
		return 0, fmt.Errorf("list I2C adapters: %w", err)
	}
	var found []int
	var names []string
	for _, p := range paths {
		b, err := fs.ReadFile(sys, p)
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(b))
		names = append(names, name)
		n, err := strconv.Atoi(strings.TrimPrefix(path.Base(path.Dir(p)), "i2c-"))
		if err == nil && strings.HasPrefix(name, want) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("no I2C adapter named %q... (have %q)", want, names)
	}
	sort.Ints(found)
	return 0, fmt.Errorf("I2C adapter name %q... is ambiguous: buses %v", want, found)
}

// bindBays resolves each bay's lines; a bay whose presence line is missing
// is left out, a missing LED only drops that LED.
func bindBays(specs []board.BaySpec, chips []chip) ([]board.Bay, []error) {
	var bays []board.Bay
	var errs []error
	resolve := func(l board.GPIOLine) (gpio.PinIO, error) {
		for _, c := range chips {
			if c.Name() == l.Chip || c.Label() == l.Chip {
				return c.line(l.Line)
			}
		}
		return nil, fmt.Errorf("no GPIO chip named or labelled %q (%d chips)", l.Chip, len(chips))
	}
	for _, s := range specs {
		b := board.Bay{Name: s.Name, PresentActiveHigh: s.PresentActiveHigh, LEDActiveLow: s.LEDActiveLow}
		pin, err := resolve(s.Present)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: bay %s presence %s: %w", ErrUnbound, s.Name, s.Present, err))
			continue
		}
		b.Present = pin
		for _, led := range []struct {
			spec board.GPIOLine
			dst  *gpio.PinIO
			what string
		}{{s.FaultLED, &b.FaultLED, "fault LED"}, {s.LocateLED, &b.LocateLED, "locate LED"}} {
			if led.spec.IsZero() {
				continue
			}
			pin, err := resolve(led.spec)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: bay %s %s %s: %w", ErrUnbound, s.Name, led.what, led.spec, err))
				continue
			}
			*led.dst = pin
		}
		bays = append(bays, b)
	}
	return bays, errs
}

// MonitorOptions returns the bound devices as board.MonitorOptions; the
// caller adds the policy (intervals, OnEvent, WatchdogReset).
func (h *Hardware) MonitorOptions() board.MonitorOptions {
	return board.MonitorOptions{PSUs: h.PSUs, Bays: h.Bays, Arrays: h.Arrays, Recording: h.Recording}
}

// Close releases the SMBus devices and GPIO lines. Idempotent; call it after
// the Monitor's Run returned.
func (h *Hardware) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		for _, d := range h.devs {
			errs = append(errs, d.Close())
		}
		for _, l := range h.lines {
			l.Close()
		}
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}
