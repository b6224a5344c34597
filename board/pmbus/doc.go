// Package pmbus reads PMBus power supplies over SMBus: presence, the status
// registers decoded into named faults and warnings, input and output
// telemetry (LINEAR11, and LINEAR16 scaled by VOUT_MODE), and the
// manufacturer's identity strings.
//
// The decoders (Linear11, Linear16, ParseVoutMode, DecodeStatus, ASCII) are
// pure functions of the bytes a device returned; malformed replies (short
// blocks, a block longer than 32 bytes, a VOUT_MODE that is not linear, an
// exponent out of range) are errors, never panics, and are fuzzed.
//
// # Concurrency
//
// A PSU is not safe for concurrent use: one goroutine reads it at a time (the
// board Monitor runs at most one read per PSU). The decoders are safe.
package pmbus
