package watchdog

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultPath is the first watchdog device. Several watchdogs are named
// /dev/watchdog0, /dev/watchdog1, ...; /dev/watchdog is watchdog0.
const DefaultPath = "/dev/watchdog"

// Errors callers act on.
var (
	// ErrNotSupported: the driver (or the operating system) does not
	// implement the operation, e.g. a pretimeout on i6300esb, or any watchdog
	// off Linux.
	ErrNotSupported = errors.New("watchdog: operation not supported by the device")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("watchdog: device closed")
)

// Flags are the WDIOF_* bits of the Linux watchdog API: the options a driver
// supports (Info.Options) and the status and boot status it reports.
type Flags uint32

// The WDIOF_* flags (include/uapi/linux/watchdog.h).
const (
	FlagOverheat      Flags = 0x0001 // reset due to CPU overheat
	FlagFanFault      Flags = 0x0002 // fan failed
	FlagExtern1       Flags = 0x0004 // external relay 1
	FlagExtern2       Flags = 0x0008 // external relay 2
	FlagPowerUnder    Flags = 0x0010 // power bad / power fault
	FlagCardReset     Flags = 0x0020 // the card previously reset the CPU
	FlagPowerOver     Flags = 0x0040 // power over voltage
	FlagSetTimeout    Flags = 0x0080 // the timeout can be set
	FlagMagicClose    Flags = 0x0100 // supports the magic close character
	FlagPreTimeout    Flags = 0x0200 // supports a pretimeout
	FlagAlarmOnly     Flags = 0x0400 // raises an alarm instead of rebooting
	FlagKeepAlivePing Flags = 0x8000 // keep-alive ping reply
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagOverheat, "overheat"},
	{FlagFanFault, "fan-fault"},
	{FlagExtern1, "extern1"},
	{FlagExtern2, "extern2"},
	{FlagPowerUnder, "power-under"},
	{FlagCardReset, "card-reset"},
	{FlagPowerOver, "power-over"},
	{FlagSetTimeout, "settimeout"},
	{FlagMagicClose, "magicclose"},
	{FlagPreTimeout, "pretimeout"},
	{FlagAlarmOnly, "alarm-only"},
	{FlagKeepAlivePing, "keepalive"},
}

// String lists the set flags by name, "none" when none is set.
func (f Flags) String() string {
	var names []string
	rest := f
	for _, n := range flagNames {
		if f&n.f != 0 {
			names = append(names, n.name)
			rest &^= n.f
		}
	}
	if rest != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint32(rest)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// Info is what WDIOC_GETSUPPORT reports about the driver.
type Info struct {
	Options  Flags  // what the driver supports
	Firmware uint32 // firmware version of the card
	Identity string // driver identity, e.g. "i6300ESB timer"
}

// BootReason summarises the boot status read once after Open.
type BootReason struct {
	// Flags is the raw boot status.
	Flags Flags
	// WatchdogReset is true when the previous reset was done by the watchdog
	// (FlagCardReset).
	WatchdogReset bool
}

// op is one watchdog ioctl carrying an int argument.
type op uint8

const (
	opGetStatus op = iota
	opGetBootStatus
	opGetTimeout
	opSetTimeout
	opGetPreTimeout
	opSetPreTimeout
	opGetTimeLeft
	opKeepAlive
)

var opNames = [...]string{
	opGetStatus:     "WDIOC_GETSTATUS",
	opGetBootStatus: "WDIOC_GETBOOTSTATUS",
	opGetTimeout:    "WDIOC_GETTIMEOUT",
	opSetTimeout:    "WDIOC_SETTIMEOUT",
	opGetPreTimeout: "WDIOC_GETPRETIMEOUT",
	opSetPreTimeout: "WDIOC_SETPRETIMEOUT",
	opGetTimeLeft:   "WDIOC_GETTIMELEFT",
	opKeepAlive:     "WDIOC_KEEPALIVE",
}

func (o op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// syscalls is the Device's system-call seam: the real implementation issues
// ioctls and writes on the open device file (watchdog_linux.go); tests use a
// hand-written fake. Errors are the raw errnos; the Device wraps them.
type syscalls interface {
	// getSupport issues WDIOC_GETSUPPORT.
	getSupport() (Info, error)
	// ioctl issues an int-argument watchdog ioctl; for the set operations the
	// driver writes back the value it actually programmed.
	ioctl(o op, arg *int32) error
	// write writes p to the device file (used for the magic close 'V').
	write(p []byte) error
	// close closes the device file.
	close() error
}

// Device is an open (and therefore armed) watchdog device.
type Device struct {
	path string

	mu     sync.Mutex
	sys    syscalls
	closed bool
}

func newDevice(path string, sys syscalls) *Device {
	return &Device{path: path, sys: sys}
}

// Path returns the device file the Device was opened from.
func (d *Device) Path() string { return d.path }

func (d *Device) do(o op, arg *int32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("watchdog %s: %s: %w", d.path, o, ErrClosed)
	}
	if err := d.sys.ioctl(o, arg); err != nil {
		return d.wrap(o.String(), err)
	}
	return nil
}

// wrap makes err say which device and call failed, and maps "not
// implemented" errnos to ErrNotSupported.
func (d *Device) wrap(what string, err error) error {
	if isNotSupported(err) {
		return fmt.Errorf("watchdog %s: %s: %w (%w)", d.path, what, ErrNotSupported, err)
	}
	return fmt.Errorf("watchdog %s: %s: %w", d.path, what, err)
}

// Info reports the driver's identity and the options it supports.
func (d *Device) Info() (Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Info{}, fmt.Errorf("watchdog %s: WDIOC_GETSUPPORT: %w", d.path, ErrClosed)
	}
	info, err := d.sys.getSupport()
	if err != nil {
		return Info{}, d.wrap("WDIOC_GETSUPPORT", err)
	}
	return info, nil
}

func (d *Device) getFlags(o op) (Flags, error) {
	var v int32
	if err := d.do(o, &v); err != nil {
		return 0, err
	}
	return Flags(uint32(v)), nil
}

// Status reports the driver's current status flags.
func (d *Device) Status() (Flags, error) { return d.getFlags(opGetStatus) }

// BootStatus reports the status flags of the last reset; FlagCardReset means
// the watchdog did it.
func (d *Device) BootStatus() (Flags, error) { return d.getFlags(opGetBootStatus) }

// Boot reads the boot status and says whether the last reset was a watchdog
// reset.
func (d *Device) Boot() (BootReason, error) {
	f, err := d.BootStatus()
	if err != nil {
		return BootReason{}, err
	}
	return BootReason{Flags: f, WatchdogReset: f&FlagCardReset != 0}, nil
}

// KeepAlive pets the watchdog (WDIOC_KEEPALIVE), restarting its timer. A
// driver without WDIOF_KEEPALIVEPING refuses the ioctl; it is then pinged by
// writing to the device, as the kernel API allows.
func (d *Device) KeepAlive() error {
	var v int32
	err := d.do(opKeepAlive, &v)
	if !errors.Is(err, ErrNotSupported) {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("watchdog %s: keepalive: %w", d.path, ErrClosed)
	}
	// Any byte but 'V' pings and cancels a pending magic close.
	if werr := d.sys.write([]byte("1")); werr != nil {
		return fmt.Errorf("watchdog %s: keepalive by write: %w", d.path, werr)
	}
	return nil
}

func seconds(what string, t time.Duration) (int32, error) {
	if t <= 0 || t%time.Second != 0 || t > 65535*time.Second {
		return 0, fmt.Errorf("watchdog: %s %v: must be a whole number of seconds in 1s..65535s", what, t)
	}
	return int32(t / time.Second), nil
}

// SetTimeout programs the timeout, a whole number of seconds, and returns
// the timeout the driver actually set (drivers round to what the hardware can
// do). It fails with ErrNotSupported when the driver's timeout is fixed.
func (d *Device) SetTimeout(t time.Duration) (time.Duration, error) {
	v, err := seconds("timeout", t)
	if err != nil {
		return 0, err
	}
	if err := d.do(opSetTimeout, &v); err != nil {
		return 0, err
	}
	return time.Duration(v) * time.Second, nil
}

// Timeout reports the programmed timeout.
func (d *Device) Timeout() (time.Duration, error) {
	var v int32
	if err := d.do(opGetTimeout, &v); err != nil {
		return 0, err
	}
	return time.Duration(v) * time.Second, nil
}

// SetPreTimeout programs the pretimeout (how long before the reset the
// driver raises its pre-action, e.g. an NMI), a whole number of seconds; 0 is
// not accepted here (use the driver default). It returns the value the driver
// set, or ErrNotSupported.
func (d *Device) SetPreTimeout(t time.Duration) (time.Duration, error) {
	v, err := seconds("pretimeout", t)
	if err != nil {
		return 0, err
	}
	if err := d.do(opSetPreTimeout, &v); err != nil {
		return 0, err
	}
	return time.Duration(v) * time.Second, nil
}

// PreTimeout reports the pretimeout; 0 means none.
func (d *Device) PreTimeout() (time.Duration, error) {
	var v int32
	if err := d.do(opGetPreTimeout, &v); err != nil {
		return 0, err
	}
	return time.Duration(v) * time.Second, nil
}

// TimeLeft reports the time before the watchdog resets the machine, to the
// second, or ErrNotSupported.
func (d *Device) TimeLeft() (time.Duration, error) {
	var v int32
	if err := d.do(opGetTimeLeft, &v); err != nil {
		return 0, err
	}
	return time.Duration(v) * time.Second, nil
}

// Close disarms the watchdog with the magic close character 'V' and closes
// the device. A kernel built with CONFIG_WATCHDOG_NOWAYOUT keeps the timer
// running anyway. Close is idempotent.
func (d *Device) Close() error { return d.close(true) }

// CloseArmed closes the device without disarming it: the machine resets
// unless someone opens and pets the watchdog again within the timeout. Use it
// when handing over to a reboot that must stay guarded. Idempotent.
func (d *Device) CloseArmed() error { return d.close(false) }

func (d *Device) close(disarm bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var werr error
	if disarm {
		if err := d.sys.write([]byte("V")); err != nil {
			werr = fmt.Errorf("watchdog %s: magic close: %w", d.path, err)
		}
	}
	if err := d.sys.close(); err != nil {
		return errors.Join(werr, fmt.Errorf("watchdog %s: close: %w", d.path, err))
	}
	return werr
}
