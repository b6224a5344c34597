package board

import (
	"fmt"
	"strings"
	"time"
)

// EventKind says what changed.
type EventKind uint8

// Event kinds.
const (
	PSULost         EventKind = iota + 1 // a PSU stopped answering (pulled, unpowered, dead)
	PSURestored                          // a lost PSU answers again
	PSUFaulted                           // a PSU's set of faults changed and is not empty (Faults)
	PSUFaultCleared                      // a PSU's faults cleared
	BayRemoved                           // a drive was pulled from its bay
	BayInserted                          // a drive was inserted
	RAIDDegraded                         // an array lost a member and is not rebuilding
	RAIDRebuilding                       // an array started rebuilding onto a member
	RAIDRebuilt                          // an array is whole again after degraded, rebuilding or failed
	RAIDFailed                           // an array stopped (inactive, broken, too many members lost, gone)
	WatchdogReset                        // the last reset was done by the watchdog (reported once at start)
	DriveErrors                          // a member's read or I/O error count grew (Source: the array; Detail names the drive)
)

var kindNames = [...]string{
	PSULost:         "psu-lost",
	PSURestored:     "psu-restored",
	PSUFaulted:      "psu-faulted",
	PSUFaultCleared: "psu-fault-cleared",
	BayRemoved:      "bay-removed",
	BayInserted:     "bay-inserted",
	RAIDDegraded:    "raid-degraded",
	RAIDRebuilding:  "raid-rebuilding",
	RAIDRebuilt:     "raid-rebuilt",
	RAIDFailed:      "raid-failed",
	WatchdogReset:   "watchdog-reset",
	DriveErrors:     "drive-errors",
}

// String returns the kind's stable name, e.g. "psu-lost".
func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Alarm reports whether the event needs an operator (a loss or fault, as
// opposed to a recovery).
func (k EventKind) Alarm() bool {
	switch k {
	case PSULost, PSUFaulted, BayRemoved, RAIDDegraded, RAIDFailed, WatchdogReset:
		return true
	}
	return false
}

// Event is one change of the board's health.
type Event struct {
	Seq    uint64 // 1, 2, ... in emission order
	Time   time.Time
	Kind   EventKind
	Source string   // the PSU, bay or array name from the profile; "watchdog"
	Faults []string // PSUFaulted: the fault names, e.g. VIN_UV_FAULT
	Detail string   // one line for operators
}

// String formats the event for logs and the console.
func (e Event) String() string {
	s := fmt.Sprintf("#%d %s %s", e.Seq, e.Kind, e.Source)
	if len(e.Faults) > 0 {
		s += " [" + strings.Join(e.Faults, ",") + "]"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// MarshalText returns the kind's stable name, for JSON and logs.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
