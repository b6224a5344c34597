package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"periph.io/x/host/v3"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/profiles"
	"github.com/nvrfw/nvr/firmware/appliance"
	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/netconf"
	"github.com/nvrfw/nvr/firmware/slots"
)

// openLog returns the program's logger: stderr, or a file appended to.
func openLog(env Env, path string, level slog.Level) (*slog.Logger, func(), error) {
	if path == "" {
		return env.Logger(level), func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("open log file: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})), func() { f.Close() }, nil
}

// openConsole opens the operator's terminal: "none", "stdio", or a device.
func openConsole(spec string) (io.ReadWriter, func(), error) {
	switch spec {
	case "", "none":
		return nil, func() {}, nil
	case "stdio":
		s, err := console.NewStdio(os.Stdin, os.Stdout)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	f, err := os.OpenFile(spec, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open console %s: %w", spec, err)
	}
	return f, func() { f.Close() }, nil
}

// applianceMode gives the appliance control of the network and the clock.
func applianceMode(opts *appliance.Options) error {
	applier, err := netconf.NewApplier(nil, "/etc/resolv.conf")
	if err != nil {
		return err
	}
	opts.Network = applier
	opts.SetClock = func(t time.Time) error {
		tv := unix.NsecToTimeval(t.UnixNano())
		if err := unix.Settimeofday(&tv); err != nil {
			return fmt.Errorf("set the system clock: %w", err)
		}
		return nil
	}
	opts.SlewClock = func(d time.Duration) error {
		// adjtime(3)'s single-shot slew: the kernel spreads d at 0.5 ms
		// per second, so recorded time never jumps.
		tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
		if _, err := unix.Adjtimex(&tx); err != nil {
			return fmt.Errorf("slew the system clock by %v: %w", d, err)
		}
		return nil
	}
	return nil
}

// powerAction performs a reboot or power-off the console asked for, once
// Run has closed everything cleanly. Outside appliance mode it only says so.
func powerAction(err error, initMode bool, env Env) error {
	var cmd int
	switch {
	case errors.Is(err, appliance.ErrRebootRequested):
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	case errors.Is(err, appliance.ErrShutdownRequested):
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	default:
		return err
	}
	fmt.Fprintf(env.Stderr, "nvrd: %v: recording stopped cleanly\n", err)
	if !initMode {
		return nil
	}
	unix.Sync()
	if rerr := unix.Reboot(cmd); rerr != nil {
		return fmt.Errorf("%v: %w", err, rerr)
	}
	return nil
}

// loadBoard reads a board profile: a built-in name, else a file. It calls
// host.Init once, so periph's GPIO chips are enumerated before the
// hardware is bound.
func loadBoard(spec string) (*board.Profile, error) {
	data, err := profiles.Lookup(spec)
	name := spec
	if err != nil {
		var ferr error
		if data, ferr = os.ReadFile(spec); ferr != nil {
			return nil, fmt.Errorf("board profile %q is neither built in (%v) nor a readable file: %w", spec, err, ferr)
		}
	}
	p, err := board.ParseProfile(name, data)
	if err != nil {
		return nil, err
	}
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("initialise hardware drivers: %w", err)
	}
	return p, nil
}

// openFirmware opens the A/B slots of the boot directory and reads the
// running slot from the kernel command line.
func openFirmware(dir string, confirmAfter time.Duration) (*appliance.Firmware, error) {
	m, err := slots.New(slots.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, fmt.Errorf("read the kernel command line: %w", err)
	}
	booted, err := slots.BootedSlot(string(cmdline))
	if err != nil {
		return nil, fmt.Errorf("which firmware slot is running: %w", err)
	}
	return &appliance.Firmware{Slots: m, Booted: booted, ConfirmAfter: confirmAfter}, nil
}
