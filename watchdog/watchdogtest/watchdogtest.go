// Package watchdogtest provides hand-written fakes for testing code that uses
// package watchdog: Dog, a Pettable that counts pets and can fail, and Clock,
// a manual clock whose tickers fire when the test advances it. Both are safe
// for concurrent use.
package watchdogtest

import (
	"sync"
	"time"

	"github.com/nvrfw/nvr/watchdog"
)

// Dog is a fake watchdog device.
type Dog struct {
	mu      sync.Mutex
	timeout time.Duration
	fixed   bool
	pets    int
	petErr  error
	lastPet time.Time
	clock   *Clock
}

// NewDog returns a Dog whose timeout is timeout. When fixed, SetTimeout
// fails with watchdog.ErrNotSupported, like a driver with a fixed timeout.
// Pets are stamped with clock (nil: the system clock).
func NewDog(timeout time.Duration, fixed bool, clock *Clock) *Dog {
	return &Dog{timeout: timeout, fixed: fixed, clock: clock}
}

// KeepAlive counts a pet, or returns the error set by FailPets.
func (d *Dog) KeepAlive() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.petErr != nil {
		return d.petErr
	}
	d.pets++
	if d.clock != nil {
		d.lastPet = d.clock.Now()
	} else {
		d.lastPet = time.Now()
	}
	return nil
}

// SetTimeout sets the timeout, rounded up to a whole second.
func (d *Dog) SetTimeout(t time.Duration) (time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fixed {
		return 0, watchdog.ErrNotSupported
	}
	d.timeout = (t + time.Second - 1).Truncate(time.Second)
	return d.timeout, nil
}

// Timeout returns the current timeout.
func (d *Dog) Timeout() (time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timeout, nil
}

// Pets returns how many KeepAlives succeeded.
func (d *Dog) Pets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pets
}

// LastPet returns the time of the last successful KeepAlive.
func (d *Dog) LastPet() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastPet
}

// FailPets makes KeepAlive return err (nil: succeed again).
func (d *Dog) FailPets(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.petErr = err
}

// Clock is a manual watchdog.Clock: time moves only by Advance.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*ticker
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker returns a ticker firing each time Advance crosses a multiple of d
// after now; like time.Ticker it holds one tick and drops the rest.
func (c *Clock) NewTicker(d time.Duration) watchdog.Ticker {
	if d <= 0 {
		panic("watchdogtest: non-positive ticker period")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &ticker{c: c, period: d, next: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.tickers = append(c.tickers, t)
	return t
}

// Tickers returns how many tickers are running (not stopped).
func (c *Clock) Tickers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tickers)
}

// Advance moves the clock forward by d, firing every ticker whose next tick
// falls within; it does not wait for the receivers.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		for !t.next.After(c.now) {
			select {
			case t.ch <- t.next:
			default:
			}
			t.next = t.next.Add(t.period)
		}
	}
}

type ticker struct {
	c      *Clock
	period time.Duration
	next   time.Time
	ch     chan time.Time
}

func (t *ticker) C() <-chan time.Time { return t.ch }

func (t *ticker) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.tickers {
		if x == t {
			t.c.tickers = append(t.c.tickers[:i], t.c.tickers[i+1:]...)
			return
		}
	}
}
