// Package board owns the appliance's board health: the board profile (which
// I2C bus and address is each PSU, which GPIO lines are each drive bay's
// presence and LEDs, which md array is the recording volume), and the Monitor
// that watches the PSUs (PMBus, package board/pmbus), the drive bays (GPIO
// edges, debounced) and the RAID arrays (sysfs, package board/mdraid) and
// emits typed events, once per change and in order.
//
// # Profile format
//
// A profile is a small line-oriented text file, one directive per line; '#'
// starts a comment; fields are separated by blanks; options are key=value
// with no blanks inside. The first directive names the model:
//
//	model generic-x86-2u
//	psu PSU1 adapter=SMBus_I801 addr=0x58    # PMBus PSU at 0x58 on the adapter named "SMBus I801..."
//	psu PSU2 bus=0 addr=0x59                 # or by adapter number: /dev/i2c-0
//	bay BAY0 present=gpiochip0:0 present-active=low fault-led=leds:8 locate-led=leds:16 led-active=high
//	raid md0 role=recording                  # role=data (default) or recording (at most one)
//	watchdog /dev/watchdog0 timeout=30s
//
// A GPIO line is CHIP:LINE, CHIP a chip's device name (gpiochip0) or label
// (e.g. a gpio-sim chip's), LINE an offset on the chip or a line name.
// present-active defaults to low (a backplane's presence pin is grounded by
// the drive), led-active to high. Names are unique per kind; a GPIO line or a
// bus address is used once. ParseProfile is strict: an unknown directive or
// option, a missing or repeated option or a malformed value is a *ParseError
// naming the file and line. Built-in profiles live in package
// board/profiles.
//
// # Hardware
//
// Hardware comes in through interfaces: PSUs as pmbus.SMBus (the Linux
// I2C_SMBUS ioctl or a periph.io i2c.Bus, package board/smbus), bays as
// periph.io gpio.PinIO (host/v3/gpioioctl lines on the target, gpiotest in
// tests). Package board/hardware binds a profile to this machine's devices;
// call periph's host.Init once in main before it.
//
// # Events
//
// At its first readout the Monitor reports only bad states (a PSU absent or
// faulted, an array degraded, rebuilding or failed); after that, every change:
// PSU lost/restored/faulted (with the fault names)/fault cleared, bay
// removed/inserted, array degraded/rebuilding/rebuilt/failed, and a
// watchdog reset seen at boot (MonitorOptions.WatchdogReset). A PSU readout
// that fails for a reason other than a NACK, or an array that cannot be read,
// changes nothing (the error shows in Status).
//
// Drive SMART attributes are not read: the kernel exposes them only through
// SG_IO/ATA pass-through or NVMe admin commands, not through a cheap sysfs
// file. What the kernel does expose cheaply is read per member drive on
// every poll: md's state flags (faulty, write_error, ...), md's count of
// read errors it corrected from redundancy (md/dev-*/errors), and the SCSI
// layer's failed-command count (device/ioerr_cnt, absent on NVMe and
// virtio). A growing count raises a DriveErrors event naming the drive: the
// early warning that a drive is going bad, before md evicts it.
//
// # Concurrency
//
// ParseProfile and Profile are plain values. A Monitor's Run owns every
// goroutine it starts (one watcher per bay, at most one readout in flight per
// PSU and per array) and joins them before returning; a readout blocked in
// the kernel delays that return until the adapter's timeout. Status,
// SetLocate and SetFault are safe to call concurrently with Run and never
// wait on a readout. Events are delivered to OnEvent from one goroutine, in
// order; a slow consumer delays later events but never the Monitor or a
// caller of Status.
package board
