package watchdog

import "time"

// Clock is the Guard's time source; tests inject watchdogtest.Clock.
type Clock interface {
	Now() time.Time
	// NewTicker returns a ticker firing every d, dropping ticks a slow
	// receiver misses, like time.Ticker.
	NewTicker(d time.Duration) Ticker
}

// Ticker is a running ticker of a Clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// realClock is the operating system's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }
