package board

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxProfileSize bounds a profile file; larger input is rejected.
const MaxProfileSize = 64 << 10

// Profile is one board model's hardware layout.
type Profile struct {
	Model    string
	PSUs     []PSUSpec
	Bays     []BaySpec
	Arrays   []ArraySpec
	Watchdog *WatchdogSpec // nil: no hardware watchdog declared
}

// PSUSpec says where a PMBus power supply answers.
type PSUSpec struct {
	Name string
	// Bus is the I2C adapter number (/dev/i2c-Bus), used when Adapter is
	// empty. Adapter numbers follow probe order; Adapter is stabler.
	Bus int
	// Adapter selects the adapter by the start of its name
	// (/sys/bus/i2c/devices/i2c-N/name), '_' standing for a blank:
	// "SMBus_I801" matches "SMBus I801 adapter at f040". It must match one
	// adapter. Profile option adapter=, exclusive with bus=.
	Adapter string
	Addr    uint16 // 7-bit device address
}

// Where names the PSU's adapter for messages: "bus 0" or "adapter X".
func (s PSUSpec) Where() string {
	if s.Adapter != "" {
		return "adapter " + s.Adapter
	}
	return fmt.Sprintf("bus %d", s.Bus)
}

// GPIOLine names one line of a GPIO chip.
type GPIOLine struct {
	Chip string // device name (gpiochip0) or label
	Line string // offset on the chip ("3") or line name
}

// IsZero reports whether no line is set.
func (g GPIOLine) IsZero() bool { return g.Chip == "" }

// String returns CHIP:LINE.
func (g GPIOLine) String() string { return g.Chip + ":" + g.Line }

// Offset returns the line's offset when Line is a number.
func (g GPIOLine) Offset() (int, bool) {
	n, err := strconv.Atoi(g.Line)
	return n, err == nil && n >= 0
}

// BaySpec says which GPIO lines report a drive bay's presence and drive its
// LEDs.
type BaySpec struct {
	Name string
	// Present is the presence line. PresentActiveHigh: a drive is present
	// when the line reads high (default false: active low, the usual
	// grounded-by-the-drive pin).
	Present           GPIOLine
	PresentActiveHigh bool
	// FaultLED and LocateLED are output lines; zero when the bay has none.
	// LEDActiveLow: a LED is lit by driving the line low (default false).
	FaultLED, LocateLED GPIOLine
	LEDActiveLow        bool
}

// ArraySpec names an md RAID array (md0, as under /sys/block).
type ArraySpec struct {
	Name      string
	Recording bool // the recording volume (role=recording)
}

// WatchdogSpec says which watchdog device to use and its timeout.
type WatchdogSpec struct {
	Path    string
	Timeout time.Duration // 0: the Guard's default
}

// RecordingArray returns the array holding the recording volume.
func (p *Profile) RecordingArray() (ArraySpec, bool) {
	for _, a := range p.Arrays {
		if a.Recording {
			return a, true
		}
	}
	return ArraySpec{}, false
}

// ParseError is a profile syntax or consistency error at a line.
type ParseError struct {
	File string // as given to ParseProfile
	Line int    // 1-based; 0 for the file as a whole
	Msg  string
}

// Error formats the error as "board profile FILE:LINE: MSG".
func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("board profile %s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("board profile %s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseProfile parses a profile; file names it in errors. Errors are
// *ParseError.
func ParseProfile(file string, data []byte) (*Profile, error) {
	if len(data) > MaxProfileSize {
		return nil, &ParseError{File: file, Msg: fmt.Sprintf("%d bytes, larger than %d", len(data), MaxProfileSize)}
	}
	p := &Profile{}
	ps := &parser{file: file, p: p, names: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxProfileSize+1)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if err := ps.directive(n, fields); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: file, Line: n + 1, Msg: err.Error()}
	}
	if p.Model == "" {
		return nil, &ParseError{File: file, Msg: "no model directive"}
	}
	return p, nil
}

type parser struct {
	file      string
	p         *Profile
	names     map[string]int // kind+" "+name -> line
	recording int            // line of the role=recording array
}

func (ps *parser) errf(line int, format string, a ...any) error {
	return &ParseError{File: ps.file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

func (ps *parser) directive(line int, f []string) error {
	kind := f[0]
	if ps.p.Model == "" && kind != "model" {
		return ps.errf(line, "%q before the model directive (the first directive must be \"model NAME\")", kind)
	}
	switch kind {
	case "model":
		if ps.p.Model != "" {
			return ps.errf(line, "second model directive")
		}
		if len(f) != 2 {
			return ps.errf(line, "model takes exactly one name")
		}
		if err := checkName(f[1]); err != nil {
			return ps.errf(line, "model: %v", err)
		}
		ps.p.Model = f[1]
		return nil
	case "psu", "bay", "raid", "watchdog":
	default:
		return ps.errf(line, "unknown directive %q (want model, psu, bay, raid or watchdog)", kind)
	}
	if len(f) < 2 {
		return ps.errf(line, "%s needs a name", kind)
	}
	name := f[1]
	if kind == "watchdog" {
		if ps.p.Watchdog != nil {
			return ps.errf(line, "second watchdog directive")
		}
		if !strings.HasPrefix(name, "/dev/") || strings.ContainsAny(name, "=:") {
			return ps.errf(line, "watchdog: %q is not a /dev path", name)
		}
	} else if err := checkName(name); err != nil {
		return ps.errf(line, "%s: %v", kind, err)
	}
	key := kind + " " + name
	if prev, ok := ps.names[key]; ok {
		return ps.errf(line, "%s %s already declared at line %d", kind, name, prev)
	}
	ps.names[key] = line
	opts, err := options(f[2:])
	if err != nil {
		return ps.errf(line, "%s %s: %v", kind, name, err)
	}
	switch kind {
	case "psu":
		err = ps.psu(name, opts)
	case "bay":
		err = ps.bay(name, opts)
	case "raid":
		err = ps.raid(line, name, opts)
	case "watchdog":
		err = ps.watchdog(name, opts)
	}
	if err == nil {
		err = opts.unused()
	}
	if err != nil {
		return ps.errf(line, "%s %s: %v", kind, name, err)
	}
	return nil
}

func (ps *parser) psu(name string, o optSet) error {
	s := PSUSpec{Name: name}
	adapter, byName := o.take("adapter")
	if byName {
		if _, both := o.vals["bus"]; both {
			return errors.New("bus= and adapter= are exclusive")
		}
		if err := checkName(adapter); err != nil {
			return fmt.Errorf("adapter=%q: %w", adapter, err)
		}
		s.Adapter = adapter
	} else {
		if _, ok := o.vals["bus"]; !ok {
			return errors.New("missing bus=N or adapter=NAME")
		}
		bus, err := o.int("bus", 0, 1<<20, true)
		if err != nil {
			return err
		}
		s.Bus = bus
	}
	addr, err := o.int("addr", 0x03, 0x77, true)
	if err != nil {
		return err
	}
	s.Addr = uint16(addr)
	for _, q := range ps.p.PSUs {
		if q.Bus == s.Bus && q.Adapter == s.Adapter && q.Addr == s.Addr {
			return fmt.Errorf("%s address %#x already used by %s", s.Where(), addr, q.Name)
		}
	}
	ps.p.PSUs = append(ps.p.PSUs, s)
	return nil
}

func (ps *parser) bay(name string, o optSet) error {
	b := BaySpec{Name: name}
	var err error
	if b.Present, err = o.gpio("present", true); err != nil {
		return err
	}
	if b.FaultLED, err = o.gpio("fault-led", false); err != nil {
		return err
	}
	if b.LocateLED, err = o.gpio("locate-led", false); err != nil {
		return err
	}
	act, err := o.choice("present-active", "low", "low", "high")
	if err != nil {
		return err
	}
	b.PresentActiveHigh = act == "high"
	if act, err = o.choice("led-active", "high", "low", "high"); err != nil {
		return err
	}
	b.LEDActiveLow = act == "low"
	used := map[GPIOLine]string{}
	for _, q := range ps.p.Bays {
		for _, l := range []GPIOLine{q.Present, q.FaultLED, q.LocateLED} {
			if !l.IsZero() {
				used[l] = q.Name
			}
		}
	}
	for _, l := range []GPIOLine{b.Present, b.FaultLED, b.LocateLED} {
		if l.IsZero() {
			continue
		}
		if other, ok := used[l]; ok {
			return fmt.Errorf("GPIO line %s already used by bay %s", l, other)
		}
		used[l] = name
	}
	ps.p.Bays = append(ps.p.Bays, b)
	return nil
}

func (ps *parser) raid(line int, name string, o optSet) error {
	if !strings.HasPrefix(name, "md") {
		return fmt.Errorf("array name %q is not an md device (md0, md127, ...)", name)
	}
	role, err := o.choice("role", "data", "data", "recording")
	if err != nil {
		return err
	}
	a := ArraySpec{Name: name, Recording: role == "recording"}
	if a.Recording {
		if ps.recording != 0 {
			return fmt.Errorf("a second recording array (the first is at line %d)", ps.recording)
		}
		ps.recording = line
	}
	ps.p.Arrays = append(ps.p.Arrays, a)
	return nil
}

func (ps *parser) watchdog(path string, o optSet) error {
	w := &WatchdogSpec{Path: path}
	if v, ok := o.take("timeout"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Hour || d%time.Second != 0 {
			return fmt.Errorf("timeout=%q: want whole seconds between 1s and 1h", v)
		}
		w.Timeout = d
	}
	ps.p.Watchdog = w
	return nil
}

// checkName accepts names of [A-Za-z0-9._-], 1..64 bytes.
func checkName(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return fmt.Errorf("name %q: want 1 to 64 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("name %q: character %q not allowed (letters, digits, '.', '_', '-')", s, r)
		}
	}
	return nil
}

// optSet holds a directive's key=value options; each must be taken once.
type optSet struct {
	order []string
	vals  map[string]string
}

func options(fields []string) (optSet, error) {
	o := optSet{vals: map[string]string{}}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			return o, fmt.Errorf("%q is not key=value", f)
		}
		if _, dup := o.vals[k]; dup {
			return o, fmt.Errorf("option %s given twice", k)
		}
		o.vals[k] = v
		o.order = append(o.order, k)
	}
	return o, nil
}

func (o optSet) take(k string) (string, bool) {
	v, ok := o.vals[k]
	delete(o.vals, k)
	return v, ok
}

func (o optSet) unused() error {
	for _, k := range o.order {
		if _, ok := o.vals[k]; ok {
			return fmt.Errorf("unknown option %q", k)
		}
	}
	return nil
}

func (o optSet) int(k string, lo, hi int, required bool) (int, error) {
	v, ok := o.take(k)
	if !ok {
		if required {
			return 0, fmt.Errorf("missing %s=", k)
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("%s=%q: want an integer in %#x..%#x", k, v, lo, hi)
	}
	return int(n), nil
}

func (o optSet) choice(k, def string, allowed ...string) (string, error) {
	v, ok := o.take(k)
	if !ok {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s=%q: want one of %s", k, v, strings.Join(allowed, ", "))
}

func (o optSet) gpio(k string, required bool) (GPIOLine, error) {
	v, ok := o.take(k)
	if !ok {
		if required {
			return GPIOLine{}, fmt.Errorf("missing %s=CHIP:LINE", k)
		}
		return GPIOLine{}, nil
	}
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return GPIOLine{}, fmt.Errorf("%s=%q: want CHIP:LINE", k, v)
	}
	g := GPIOLine{Chip: v[:i], Line: v[i+1:]}
	if err := errors.Join(checkName(g.Chip), checkName(g.Line)); err != nil {
		return GPIOLine{}, fmt.Errorf("%s=%q: %w", k, v, err)
	}
	return g, nil
}

// Format returns the profile in its canonical text form; ParseProfile of it
// yields an equal Profile.
func (p *Profile) Format() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "model %s\n", p.Model)
	for _, s := range p.PSUs {
		if s.Adapter != "" {
			fmt.Fprintf(&b, "psu %s adapter=%s addr=%#02x\n", s.Name, s.Adapter, s.Addr)
		} else {
			fmt.Fprintf(&b, "psu %s bus=%d addr=%#02x\n", s.Name, s.Bus, s.Addr)
		}
	}
	for _, s := range p.Bays {
		fmt.Fprintf(&b, "bay %s present=%s", s.Name, s.Present)
		if s.PresentActiveHigh {
			b.WriteString(" present-active=high")
		}
		if !s.FaultLED.IsZero() {
			fmt.Fprintf(&b, " fault-led=%s", s.FaultLED)
		}
		if !s.LocateLED.IsZero() {
			fmt.Fprintf(&b, " locate-led=%s", s.LocateLED)
		}
		if s.LEDActiveLow {
			b.WriteString(" led-active=low")
		}
		b.WriteByte('\n')
	}
	for _, a := range p.Arrays {
		role := "data"
		if a.Recording {
			role = "recording"
		}
		fmt.Fprintf(&b, "raid %s role=%s\n", a.Name, role)
	}
	if w := p.Watchdog; w != nil {
		fmt.Fprintf(&b, "watchdog %s", w.Path)
		if w.Timeout > 0 {
			fmt.Fprintf(&b, " timeout=%s", w.Timeout)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
