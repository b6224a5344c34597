//go:build !linux

package watchdog

import (
	"errors"
	"fmt"
)

// Open fails with ErrNotSupported: the watchdog API is Linux's.
func Open(path string) (*Device, error) {
	return nil, fmt.Errorf("watchdog: open %s: %w", path, ErrNotSupported)
}

func isNotSupported(err error) bool { return errors.Is(err, ErrNotSupported) }
