package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SysfsStatus is a watchdog's state as /sys/class/watchdog/watchdogN shows
// it (CONFIG_WATCHDOG_SYSFS). Reading it does not open, and so does not arm
// or disturb, the device: it is what `nvrd board watchdog` prints while
// nvrd run holds /dev/watchdog.
type SysfsStatus struct {
	Name       string // watchdog0
	Identity   string
	Active     bool // state: the timer runs
	NoWayOut   bool // the kernel cannot disarm it
	Status     Flags
	BootStatus Flags
	Timeout    time.Duration
	// TimeLeft and PreTimeout are 0 when the driver does not report them.
	TimeLeft   time.Duration
	PreTimeout time.Duration
}

// WatchdogReset reports whether the last reset was a watchdog reset.
func (s SysfsStatus) WatchdogReset() bool { return s.BootStatus&FlagCardReset != 0 }

// ListSysfs returns the watchdogs under sys (the /sys root, os.DirFS("/sys")),
// sorted; none is not an error.
func ListSysfs(sys fs.FS) ([]string, error) {
	ents, err := fs.ReadDir(sys, "class/watchdog")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watchdog: list sysfs: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// ReadSysfs reads watchdog name (watchdog0) under sys. Attributes a driver
// does not provide (timeleft, pretimeout) read as zero.
func ReadSysfs(sys fs.FS, name string) (SysfsStatus, error) {
	if name == "" || strings.ContainsAny(name, "/.") {
		return SysfsStatus{}, fmt.Errorf("watchdog: %q is not a watchdog name", name)
	}
	dir := path.Join("class/watchdog", name)
	s := SysfsStatus{Name: name}
	var errs []error
	read := func(attr string, optional bool) string {
		b, err := fs.ReadFile(sys, path.Join(dir, attr))
		if err != nil {
			if !(optional && errors.Is(err, fs.ErrNotExist)) {
				errs = append(errs, err)
			}
			return ""
		}
		if len(b) > 256 {
			errs = append(errs, fmt.Errorf("%s: %d bytes, too long", attr, len(b)))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	num := func(attr string, optional bool) uint64 {
		v := read(attr, optional)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseUint(v, 0, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a number", attr, v))
		}
		return n
	}
	s.Identity = read("identity", false)
	switch st := read("state", false); st {
	case "active":
		s.Active = true
	case "inactive", "":
	default:
		errs = append(errs, fmt.Errorf("state: %q is neither active nor inactive", st))
	}
	s.NoWayOut = num("nowayout", true) != 0
	s.Status = Flags(num("status", true))
	s.BootStatus = Flags(num("bootstatus", true))
	s.Timeout = time.Duration(num("timeout", true)) * time.Second
	s.TimeLeft = time.Duration(num("timeleft", true)) * time.Second
	s.PreTimeout = time.Duration(num("pretimeout", true)) * time.Second
	if err := errors.Join(errs...); err != nil {
		return SysfsStatus{}, fmt.Errorf("watchdog: sysfs %s: %w", name, err)
	}
	return s, nil
}
