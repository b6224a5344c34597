package watchdog

import (
	"fmt"
	"sync/atomic"
	"time"
)

// CheckFunc is one health check: it returns nil while healthy, or an error
// saying what is wrong. now is the Guard's clock. A CheckFunc should not
// block: read an atomic or a snapshot and compare, never do I/O. One that
// blocks past Options.CheckTimeout counts as failing.
type CheckFunc func(now time.Time) error

// Recent returns a check that fails when last() is more than bound before
// now: e.g. the ring store's last durable commit (a hung Datasync stops the
// commits, the check fails, petting stops). A zero last() counts as "never"
// and fails.
func Recent(last func() time.Time, bound time.Duration) CheckFunc {
	return func(now time.Time) error {
		t := last()
		if t.IsZero() {
			return fmt.Errorf("never happened (bound %v)", bound)
		}
		if age := now.Sub(t); age > bound {
			return fmt.Errorf("last at %s, %v ago (bound %v)", t.UTC().Format(time.RFC3339Nano), age.Round(time.Millisecond), bound)
		}
		return nil
	}
}

// Heartbeat is a liveness check of a main loop: the loop calls Beat each
// iteration; the check fails when no beat arrived within MaxAge. Beat is safe
// for concurrent use and never blocks.
type Heartbeat struct {
	name   string
	maxAge time.Duration
	clock  Clock
	last   atomic.Int64 // unix nanoseconds of the last beat
}

// Beat records that the loop is alive now.
func (h *Heartbeat) Beat() { h.last.Store(h.clock.Now().UnixNano()) }

// Name returns the check's name.
func (h *Heartbeat) Name() string { return h.name }

func (h *Heartbeat) check(now time.Time) error {
	last := time.Unix(0, h.last.Load())
	if age := now.Sub(last); age > h.maxAge {
		return fmt.Errorf("no heartbeat for %v (max %v)", age.Round(time.Millisecond), h.maxAge)
	}
	return nil
}
