package watchdog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// BootCounts is how many boots, and how many of them followed a watchdog
// reset, the appliance has recorded.
type BootCounts struct {
	Boots          uint64
	WatchdogResets uint64
}

// The boot counter file is two lines:
//
//	boots 42
//	watchdog_resets 3

// ParseBootCounts parses a boot counter file strictly.
func ParseBootCounts(b []byte) (BootCounts, error) {
	var c BootCounts
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			return BootCounts{}, fmt.Errorf("boot counts line %d: want \"KEY N\"", n)
		}
		num, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return BootCounts{}, fmt.Errorf("boot counts line %d: %q is not a count", n, v)
		}
		if seen[k] {
			return BootCounts{}, fmt.Errorf("boot counts line %d: %s repeated", n, k)
		}
		seen[k] = true
		switch k {
		case "boots":
			c.Boots = num
		case "watchdog_resets":
			c.WatchdogResets = num
		default:
			return BootCounts{}, fmt.Errorf("boot counts line %d: unknown key %q", n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return BootCounts{}, fmt.Errorf("boot counts: %w", err)
	}
	if !seen["boots"] || !seen["watchdog_resets"] {
		return BootCounts{}, errors.New("boot counts: missing boots or watchdog_resets")
	}
	if c.WatchdogResets > c.Boots {
		return BootCounts{}, fmt.Errorf("boot counts: %d watchdog resets but only %d boots", c.WatchdogResets, c.Boots)
	}
	return c, nil
}

// Format returns the counter file's text.
func (c BootCounts) Format() []byte {
	return fmt.Appendf(nil, "boots %d\nwatchdog_resets %d\n", c.Boots, c.WatchdogResets)
}

// RecordBoot counts this boot (and a watchdog reset when r says so) in the
// file at path, crash-safely (temporary file, fsync, rename, fsync of the
// directory), and returns the new counts. Call it once per boot. A missing
// file starts from zero; a corrupt one is an error (and left alone).
func RecordBoot(path string, r BootReason) (BootCounts, error) {
	var c BootCounts
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return BootCounts{}, fmt.Errorf("watchdog: read boot counts: %w", err)
	default:
		if c, err = ParseBootCounts(b); err != nil {
			return BootCounts{}, fmt.Errorf("watchdog: %s: %w", path, err)
		}
	}
	c.Boots++
	if r.WatchdogReset {
		c.WatchdogResets++
	}
	if err := writeFileAtomic(path, c.Format()); err != nil {
		return BootCounts{}, fmt.Errorf("watchdog: save boot counts: %w", err)
	}
	return c, nil
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
