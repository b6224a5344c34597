package pmbus

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// SMBus is the transport a PSU is read through: the Linux I2C_SMBUS ioctl
// (smbus.Dev), a periph.io bus (smbus.Periph), or a fake. A device that does
// not acknowledge must return an error wrapping smbus.ErrNoDevice.
type SMBus interface {
	ReadByteData(cmd byte) (byte, error)
	ReadWordData(cmd byte) (uint16, error)
	// ReadBlockData returns the block's data bytes (without the count).
	ReadBlockData(cmd byte) ([]byte, error)
}

// PMBus command codes used here (PMBus 1.3 Part II).
const (
	CmdVoutMode          = 0x20
	CmdStatusByte        = 0x78
	CmdStatusWord        = 0x79
	CmdStatusVout        = 0x7A
	CmdStatusIout        = 0x7B
	CmdStatusInput       = 0x7C
	CmdStatusTemperature = 0x7D
	CmdStatusCML         = 0x7E
	CmdStatusOther       = 0x7F
	CmdStatusMfr         = 0x80
	CmdStatusFans12      = 0x81
	CmdReadVin           = 0x88
	CmdReadIin           = 0x89
	CmdReadVout          = 0x8B
	CmdReadIout          = 0x8C
	CmdReadTemperature1  = 0x8D
	CmdReadFanSpeed1     = 0x90
	CmdReadPout          = 0x96
	CmdReadPin           = 0x97
	CmdMfrID             = 0x99
	CmdMfrModel          = 0x9A
	CmdMfrRevision       = 0x9B
	CmdMfrSerial         = 0x9E
)

// Errors callers act on.
var (
	// ErrVoutMode: VOUT_MODE selects a data format other than linear (VID,
	// direct, IEEE half), which this package does not decode.
	ErrVoutMode = errors.New("pmbus: VOUT_MODE is not linear")
	// ErrExponent: a LINEAR16 exponent outside -16..15.
	ErrExponent = errors.New("pmbus: exponent out of range")
)

// Linear11 decodes the LINEAR11 format: a signed 5-bit exponent in bits
// 15..11 and a signed 11-bit mantissa in bits 10..0; value = m * 2^e.
func Linear11(raw uint16) float64 {
	e := int(int16(raw) >> 11)   // arithmetic shift keeps the sign
	m := int(int16(raw<<5) >> 5) // sign-extend 11 bits
	return math.Ldexp(float64(m), e)
}

// Linear16 decodes a LINEAR16 value (VOUT, unsigned mantissa) with the
// exponent from VOUT_MODE: value = raw * 2^exp.
func Linear16(raw uint16, exp int) (float64, error) {
	if exp < -16 || exp > 15 {
		return 0, fmt.Errorf("pmbus: LINEAR16 exponent %d (want -16..15): %w", exp, ErrExponent)
	}
	return math.Ldexp(float64(raw), exp), nil
}

// ParseVoutMode returns the LINEAR16 exponent of a VOUT_MODE byte: bits 7..5
// are the mode (000 linear), bits 4..0 the signed exponent.
func ParseVoutMode(b byte) (int, error) {
	if mode := b >> 5; mode != 0 {
		names := [...]string{"linear", "VID", "direct", "IEEE half", "mode 4", "mode 5", "mode 6", "mode 7"}
		return 0, fmt.Errorf("pmbus: VOUT_MODE %#02x selects %s: %w", b, names[mode], ErrVoutMode)
	}
	return int(int8(b<<3) >> 3), nil
}

// Severity says how bad a status condition is.
type Severity uint8

// Severities.
const (
	Warning Severity = iota + 1
	Fault
)

// String returns "fault" or "warning".
func (s Severity) String() string {
	switch s {
	case Fault:
		return "fault"
	case Warning:
		return "warning"
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// MarshalText returns the severity's name, for JSON and logs.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Condition is one named status bit that is set.
type Condition struct {
	Name     string // e.g. "VOUT_OV_FAULT", "FAN1_WARNING", "POWER_GOOD_NEGATED"
	Severity Severity
}

type bit struct {
	mask uint16
	name string
	sev  Severity
}

// Bits of STATUS_WORD reported by themselves (the rest are summaries of a
// detail register).
var wordBits = []bit{
	{0x0040, "OFF", Fault},
	{0x0080, "BUSY", Warning},
	{0x0100, "UNKNOWN", Warning},
	{0x0800, "POWER_GOOD_NEGATED", Fault},
}

// summary maps a STATUS_WORD summary bit to its detail register and the
// detail register's bits.
type summary struct {
	mask uint16
	cmd  byte
	name string
	bits []bit
}

var summaries = []summary{
	{0x8000, CmdStatusVout, "VOUT", []bit{
		{0x80, "VOUT_OV_FAULT", Fault}, {0x40, "VOUT_OV_WARNING", Warning},
		{0x20, "VOUT_UV_WARNING", Warning}, {0x10, "VOUT_UV_FAULT", Fault},
		{0x08, "VOUT_MAX_MIN_WARNING", Warning}, {0x04, "TON_MAX_FAULT", Fault},
		{0x02, "TOFF_MAX_WARNING", Warning}, {0x01, "VOUT_TRACKING_ERROR", Fault},
	}},
	{0x4000, CmdStatusIout, "IOUT_POUT", []bit{
		{0x80, "IOUT_OC_FAULT", Fault}, {0x40, "IOUT_OC_LV_FAULT", Fault},
		{0x20, "IOUT_OC_WARNING", Warning}, {0x10, "IOUT_UC_FAULT", Fault},
		{0x08, "CURRENT_SHARE_FAULT", Fault}, {0x04, "POWER_LIMITING", Warning},
		{0x02, "POUT_OP_FAULT", Fault}, {0x01, "POUT_OP_WARNING", Warning},
	}},
	{0x2000, CmdStatusInput, "INPUT", []bit{
		{0x80, "VIN_OV_FAULT", Fault}, {0x40, "VIN_OV_WARNING", Warning},
		{0x20, "VIN_UV_WARNING", Warning}, {0x10, "VIN_UV_FAULT", Fault},
		{0x08, "OFF_LOW_VIN", Fault}, {0x04, "IIN_OC_FAULT", Fault},
		{0x02, "IIN_OC_WARNING", Warning}, {0x01, "PIN_OP_WARNING", Warning},
	}},
	{0x0004, CmdStatusTemperature, "TEMPERATURE", []bit{
		{0x80, "OT_FAULT", Fault}, {0x40, "OT_WARNING", Warning},
		{0x20, "UT_WARNING", Warning}, {0x10, "UT_FAULT", Fault},
	}},
	{0x0002, CmdStatusCML, "CML", []bit{
		{0x80, "CML_INVALID_COMMAND", Warning}, {0x40, "CML_INVALID_DATA", Warning},
		{0x20, "CML_PEC_FAILED", Warning}, {0x10, "CML_MEMORY_FAULT", Fault},
		{0x08, "CML_PROCESSOR_FAULT", Fault}, {0x02, "CML_OTHER_COMM_FAULT", Warning},
		{0x01, "CML_OTHER_MEMORY_LOGIC_FAULT", Fault},
	}},
	{0x0400, CmdStatusFans12, "FANS", []bit{
		{0x80, "FAN1_FAULT", Fault}, {0x40, "FAN2_FAULT", Fault},
		{0x20, "FAN1_WARNING", Warning}, {0x10, "FAN2_WARNING", Warning},
		{0x02, "AIRFLOW_FAULT", Fault}, {0x01, "AIRFLOW_WARNING", Warning},
	}},
	{0x0200, CmdStatusOther, "OTHER", nil},
	{0x1000, CmdStatusMfr, "MFR_SPECIFIC", nil},
}

// Undecoded status bits summarised by others: VOUT_OV (0x20), IOUT_OC
// (0x10) and VIN_UV (0x08) repeat a detail register's fault; reported from
// the word only when the detail register cannot be read.
var wordFallback = []bit{
	{0x0020, "VOUT_OV_FAULT", Fault},
	{0x0010, "IOUT_OC_FAULT", Fault},
	{0x0008, "VIN_UV_FAULT", Fault},
}

// DecodeStatus names the conditions of a STATUS_WORD and its detail
// registers. detail(cmd) returns a detail register; ok false means it could
// not be read, and the summary bit is then reported by itself (e.g. "FANS").
// The result is in a fixed order and has no duplicates.
func DecodeStatus(word uint16, detail func(cmd byte) (b byte, ok bool)) []Condition {
	var out []Condition
	seen := map[string]bool{}
	add := func(name string, sev Severity) {
		if !seen[name] {
			seen[name] = true
			out = append(out, Condition{name, sev})
		}
	}
	for _, b := range wordBits {
		if word&b.mask != 0 {
			add(b.name, b.sev)
		}
	}
	for _, s := range summaries {
		if word&s.mask == 0 {
			continue
		}
		v, ok := byte(0), false
		if s.bits != nil {
			v, ok = detail(s.cmd)
		}
		n := len(out)
		if ok {
			for _, b := range s.bits {
				if uint16(v)&b.mask != 0 {
					add(b.name, b.sev)
				}
			}
		}
		if len(out) == n {
			add(s.name, Warning)
		}
	}
	for _, b := range wordFallback {
		if word&b.mask != 0 && !seen[b.name] {
			add(b.name, b.sev)
		}
	}
	return out
}

// ASCII turns an identity block (MFR_ID, MFR_MODEL, ...) into a string:
// trailing NUL, 0xFF and blank padding dropped, other non-printable bytes
// shown as '?'.
func ASCII(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == 0 || b[len(b)-1] == 0xff || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			s.WriteByte(c)
		} else {
			s.WriteByte('?')
		}
	}
	return s.String()
}
