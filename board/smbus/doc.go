// Package smbus reads SMBus devices (PMBus power supplies): Dev issues the
// Linux I2C_SMBUS ioctl on /dev/i2c-N, which works on SMBus-only adapters
// (Intel i801, i2c-stub) where plain I2C transfers, and so periph.io's
// i2c.Bus.Tx, fail with "operation not supported"; Periph adapts any
// periph.io i2c.Bus (real or i2ctest.Playback) to the same transactions.
// Both implement pmbus.SMBus (byte, word and block reads) and also write
// byte, word and block registers (PMBus commands; loading i2c-stub's
// registers in the QEMU guest, which has no i2cset).
//
// A device that does not acknowledge its address (absent, unpowered) makes
// every read fail with an error wrapping ErrNoDevice; callers treat that as
// "not present", anything else as a bus or device fault.
//
// # Concurrency
//
// A Dev may be used from several goroutines; each read is one ioctl, which
// the kernel serialises per adapter. Periph is as safe as its bus.
package smbus
