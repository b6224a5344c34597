// Package board owns the appliance's board health: the board profile (which
// I2C bus and address is each PSU, which GPIO lines are each drive bay's
// presence and LEDs, which md array is the recording volume), and the Monitor
// that watches the PSUs (PMBus, package board/pmbus), the drive bays (GPIO
// edges, debounced) and the RAID arrays (sysfs, package board/mdraid) and
// emits typed events, once per change and in order.
//
// Hardware comes in through interfaces: PSUs as pmbus.SMBus (the Linux
// I2C_SMBUS ioctl or a periph.io i2c.Bus, package board/smbus), bays as
// periph.io gpio.PinIO (host/v3/gpioioctl on the target; gpiotest in tests).
// OpenHardware resolves a profile to real devices; call periph's host.Init
// once in main before it.
//
// Drive SMART health is not read: the kernel exposes it only through
// SG_IO/ATA pass-through or NVMe admin commands, not through a cheap sysfs
// file; md's per-member state (faulty, write_mostly, ...) is what the Monitor
// reports per drive.
//
// # Concurrency
//
// ParseProfile and Profile are plain values. A Monitor's Run owns every
// goroutine it starts (one per bay, one per PSU read in flight) and joins them
// before returning; Status, SetLocate and SetFault are safe to call
// concurrently with Run and never wait on hardware I/O beyond a GPIO write.
// Events are delivered from one goroutine, in order; a slow consumer delays
// later events but never a caller of Status.
package board
