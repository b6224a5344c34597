package slots

import (
	"fmt"
	"strings"
)

// Slot names one of the two firmware slots.
type Slot string

// The two slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// Valid reports whether s is A or B.
func (s Slot) Valid() bool { return s == A || s == B }

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// Environment keys owned by this package; image/grub/grub.cfg reads and
// writes the same ones.
const (
	// KeyDefault names the confirmed slot booted when no trial is pending.
	KeyDefault = "nvr_default"
	// KeyTrial names a slot to boot once; the bootloader clears it (sets it
	// to "") before booting that slot.
	KeyTrial = "nvr_trial"
)

// CmdlineKey is the kernel command-line parameter through which the
// bootloader tells the booted system its slot ("nvr.slot=b").
const CmdlineKey = "nvr.slot"

// Decide is the bootloader's rule, the same as image/grub/grub.cfg: when a
// valid trial slot is pending, boot it once and clear the trial flag first
// (the returned env is what the bootloader saves before booting); otherwise
// boot the default slot, or A when the default is missing or invalid. A
// trial that fails (the system resets before nvrd confirms) therefore falls
// back to the default slot on the next boot by itself.
func Decide(env Env) (Slot, Env) {
	boot := A
	if d := Slot(env.Get(KeyDefault)); d == B {
		boot = B
	}
	if t := Slot(env.Get(KeyTrial)); t.Valid() {
		return t, env.Set(KeyTrial, "")
	}
	return boot, env
}

// BootedSlot returns the slot named by nvr.slot= in a kernel command line
// (the content of /proc/cmdline).
func BootedSlot(cmdline string) (Slot, error) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineKey+"="); ok {
			if s := Slot(v); s.Valid() {
				return s, nil
			}
			return "", fmt.Errorf("slots: kernel command line has %s=%q, want a or b", CmdlineKey, v)
		}
	}
	return "", fmt.Errorf("slots: kernel command line has no %s= (not booted by the A/B bootloader)", CmdlineKey)
}
