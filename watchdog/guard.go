package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pettable is the part of a watchdog the Guard drives. *Device implements
// it; watchdogtest.Dog is the fake.
type Pettable interface {
	KeepAlive() error
	SetTimeout(t time.Duration) (time.Duration, error)
	Timeout() (time.Duration, error)
}

// Errors callers act on.
var (
	// ErrDuplicateCheck: a check with that name is already registered.
	ErrDuplicateCheck = errors.New("watchdog: duplicate check name")
	// ErrHoldTooLong: a maintenance hold longer than Options.MaxHold.
	ErrHoldTooLong = errors.New("watchdog: maintenance hold longer than allowed")
)

// Defaults of Options.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultBootGrace = 2 * time.Minute
	DefaultMaxHold   = 30 * time.Minute
)

// Options configure a Guard: the policy (timeout, petting interval, boot
// grace, which checks only advise) and its seams.
type Options struct {
	// Device is the watchdog to pet. Required.
	Device Pettable
	// Timeout is programmed into the device when Run starts, a whole number
	// of seconds. Default DefaultTimeout (30s). When the driver's timeout is
	// fixed (SetTimeout fails with ErrNotSupported) the device's own timeout
	// is used. Negative: keep the device's current timeout.
	Timeout time.Duration
	// PreTimeout, when positive, is programmed after the timeout on devices
	// that support it (*Device does): the driver's pre-action (NMI, panic,
	// log) fires that long before the reset. A driver without pretimeouts
	// is logged, not an error. Default 0: leave it alone.
	PreTimeout time.Duration
	// Interval is how often checks run and, while healthy, the device is
	// petted. Default: the device's timeout / 3; it may not be longer.
	Interval time.Duration
	// CheckTimeout bounds one check's evaluation, in wall-clock time: a
	// check still running after it counts as failing ("did not return"),
	// and is not started again until it returns. Default: Interval/2.
	CheckTimeout time.Duration
	// BootGrace is how long after Run starts the Guard pets whatever the
	// checks say (the store opens, cameras connect). Default
	// DefaultBootGrace (2m); negative means none.
	BootGrace time.Duration
	// MaxHold bounds a maintenance hold. Default DefaultMaxHold (30m).
	MaxHold time.Duration
	// Advisory names checks whose failure is logged but never stops
	// petting. Every other check is fatal. Default: none (all fatal).
	Advisory []string
	// Clock is the time source. Default: the system clock.
	Clock Clock
	// Logger receives check and petting state changes. Default: discard.
	Logger *slog.Logger
}

// Guard pets a watchdog only while every fatal health check passes.
type Guard struct {
	dev      Pettable
	opts     Options
	clock    Clock
	log      *slog.Logger
	advisory map[string]bool

	mu       sync.Mutex
	checks   []*check
	holds    map[uint64]*Hold
	holdSeq  uint64
	st       Status
	petErr   error // last KeepAlive error, for change logging
	graceEnd time.Time
	running  atomic.Bool
	evals    sync.WaitGroup // check evaluations in flight
	checkTO  time.Duration
}

type check struct {
	name    string
	fn      CheckFunc
	fatal   bool
	failing bool
	err     error
	since   time.Time
	running time.Time // wall time the evaluation in flight started; zero when none
}

// New validates opts and returns a Guard; Run starts it.
func New(opts Options) (*Guard, error) {
	if opts.Device == nil {
		return nil, errors.New("watchdog: guard: Options.Device is nil")
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Timeout > 0 {
		if _, err := seconds("guard timeout", opts.Timeout); err != nil {
			return nil, err
		}
	}
	if opts.CheckTimeout < 0 {
		return nil, fmt.Errorf("watchdog: guard: negative check timeout %v", opts.CheckTimeout)
	}
	if opts.Interval < 0 {
		return nil, fmt.Errorf("watchdog: guard: negative interval %v", opts.Interval)
	}
	if opts.Interval > 0 && opts.Timeout > 0 && opts.Interval > opts.Timeout/3 {
		return nil, fmt.Errorf("watchdog: guard: interval %v longer than timeout/3 (%v)", opts.Interval, opts.Timeout/3)
	}
	if opts.PreTimeout > 0 {
		if _, err := seconds("guard pretimeout", opts.PreTimeout); err != nil {
			return nil, err
		}
	}
	if opts.BootGrace == 0 {
		opts.BootGrace = DefaultBootGrace
	}
	if opts.MaxHold <= 0 {
		opts.MaxHold = DefaultMaxHold
	}
	g := &Guard{
		dev:      opts.Device,
		opts:     opts,
		clock:    opts.Clock,
		log:      opts.Logger,
		advisory: make(map[string]bool),
		holds:    make(map[uint64]*Hold),
	}
	if g.clock == nil {
		g.clock = realClock{}
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	for _, n := range opts.Advisory {
		g.advisory[n] = true
	}
	return g, nil
}

// AddCheck registers a health check under a unique name. It may be called
// before or while Run runs; the check is evaluated from the next tick.
func (g *Guard) AddCheck(name string, fn CheckFunc) error {
	if name == "" || fn == nil {
		return errors.New("watchdog: AddCheck needs a name and a function")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.checks {
		if c.name == name {
			return fmt.Errorf("watchdog: check %q: %w", name, ErrDuplicateCheck)
		}
	}
	g.checks = append(g.checks, &check{name: name, fn: fn, fatal: !g.advisory[name]})
	return nil
}

// Heartbeat registers a liveness check named name that fails when the
// returned Heartbeat was not beaten within maxAge. Creating it counts as the
// first beat.
func (g *Guard) Heartbeat(name string, maxAge time.Duration) (*Heartbeat, error) {
	if maxAge <= 0 {
		return nil, fmt.Errorf("watchdog: heartbeat %q: maxAge %v must be positive", name, maxAge)
	}
	h := &Heartbeat{name: name, maxAge: maxAge, clock: g.clock}
	h.Beat()
	if err := g.AddCheck(name, h.check); err != nil {
		return nil, err
	}
	return h, nil
}

// Hold is an active maintenance hold: while it lasts the Guard pets whatever
// the checks say.
type Hold struct {
	g      *Guard
	id     uint64
	reason string
	until  time.Time
}

// Release ends the hold. Idempotent.
func (h *Hold) Release() {
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	if _, ok := h.g.holds[h.id]; ok {
		delete(h.g.holds, h.id)
		h.g.log.Info("watchdog maintenance hold released", "reason", h.reason)
	}
}

// Until returns when the hold expires by itself.
func (h *Hold) Until() time.Time { return h.until }

// Hold starts a maintenance hold for up to d (at most Options.MaxHold, else
// ErrHoldTooLong), e.g. while a firmware image is written: the Guard keeps
// petting even if checks fail, until Release or the deadline.
func (g *Guard) Hold(reason string, d time.Duration) (*Hold, error) {
	if d <= 0 {
		return nil, fmt.Errorf("watchdog: hold %q: duration %v must be positive", reason, d)
	}
	if d > g.opts.MaxHold {
		return nil, fmt.Errorf("watchdog: hold %q for %v (max %v): %w", reason, d, g.opts.MaxHold, ErrHoldTooLong)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holdSeq++
	h := &Hold{g: g, id: g.holdSeq, reason: reason, until: g.clock.Now().Add(d)}
	g.holds[h.id] = h
	g.log.Info("watchdog maintenance hold", "reason", reason, "until", h.until)
	return h, nil
}

// CheckState is one check's state in a Status.
type CheckState struct {
	Name    string
	Fatal   bool
	Failing bool
	Error   string    // why it fails; empty when passing
	Since   time.Time // when it entered its current state (zero before the first run)
}

// Status is a snapshot of the Guard.
type Status struct {
	Running   bool
	Timeout   time.Duration // the device's timeout, once Run programmed it
	Interval  time.Duration
	Petting   bool // the last tick petted the device
	InGrace   bool
	Held      bool
	HoldUntil time.Time // the latest active hold's deadline
	Ticks     uint64    // check rounds done
	Pets      uint64    // successful KeepAlives
	PetErrors uint64    // failed KeepAlives
	LastPet   time.Time
	Checks    []CheckState
}

// Status returns a snapshot; it never waits on the device.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.st
	s.Checks = make([]CheckState, 0, len(g.checks))
	for _, c := range g.checks {
		cs := CheckState{Name: c.name, Fatal: c.fatal, Failing: c.failing, Since: c.since}
		if c.err != nil {
			cs.Error = c.err.Error()
		}
		s.Checks = append(s.Checks, cs)
	}
	return s
}

// ErrRunning is returned by Run while the Guard is already running.
var ErrRunning = errors.New("watchdog: guard already running")

// Run programs the timeout, pets once, then runs the checks every Interval
// and pets while they pass, until ctx ends. It returns nil when ctx ends and
// leaves the device armed: the owner decides between Device.Close (disarm on
// a clean shutdown) and CloseArmed. A Guard runs once at a time
// (ErrRunning); the boot grace starts at each Run.
func (g *Guard) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer g.running.Store(false)
	timeout, err := g.programTimeout()
	if err != nil {
		return err
	}
	if err := g.programPreTimeout(timeout); err != nil {
		return err
	}
	interval := g.opts.Interval
	if interval == 0 {
		interval = timeout / 3
	}
	if interval > timeout/3 || interval <= 0 {
		return fmt.Errorf("watchdog: guard: interval %v not in (0, timeout/3 = %v]", interval, timeout/3)
	}
	g.checkTO = g.opts.CheckTimeout
	if g.checkTO == 0 {
		g.checkTO = interval / 2
	}
	defer g.evals.Wait()
	start := g.clock.Now()
	g.mu.Lock()
	g.st.Running, g.st.Timeout, g.st.Interval = true, timeout, interval
	if g.opts.BootGrace > 0 {
		g.graceEnd = start.Add(g.opts.BootGrace)
	} else {
		g.graceEnd = start
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.st.Running = false
		g.mu.Unlock()
	}()
	g.log.Info("watchdog guard started", "timeout", timeout, "interval", interval, "boot_grace", max(g.opts.BootGrace, 0))

	t := g.clock.NewTicker(interval)
	defer t.Stop()
	g.tick(start)
	for {
		select {
		case <-ctx.Done():
			g.log.Info("watchdog guard stopped", "reason", context.Cause(ctx))
			return nil
		case <-t.C():
			g.tick(g.clock.Now())
		}
	}
}

func (g *Guard) programTimeout() (time.Duration, error) {
	if g.opts.Timeout > 0 {
		got, err := g.dev.SetTimeout(g.opts.Timeout)
		if err == nil {
			if got != g.opts.Timeout {
				g.log.Warn("watchdog timeout rounded by the driver", "wanted", g.opts.Timeout, "got", got)
			}
			return got, nil
		}
		if !errors.Is(err, ErrNotSupported) {
			return 0, fmt.Errorf("watchdog: guard: set timeout: %w", err)
		}
		g.log.Warn("watchdog timeout is fixed by the driver", "err", err)
	}
	got, err := g.dev.Timeout()
	if err != nil {
		return 0, fmt.Errorf("watchdog: guard: read timeout: %w", err)
	}
	if got <= 0 {
		return 0, fmt.Errorf("watchdog: guard: device reports timeout %v", got)
	}
	return got, nil
}

func (g *Guard) programPreTimeout(timeout time.Duration) error {
	if g.opts.PreTimeout <= 0 {
		return nil
	}
	if g.opts.PreTimeout >= timeout {
		return fmt.Errorf("watchdog: guard: pretimeout %v not shorter than the timeout %v", g.opts.PreTimeout, timeout)
	}
	pd, ok := g.dev.(interface {
		SetPreTimeout(time.Duration) (time.Duration, error)
	})
	if !ok {
		g.log.Warn("watchdog device cannot set a pretimeout", "pretimeout", g.opts.PreTimeout)
		return nil
	}
	got, err := pd.SetPreTimeout(g.opts.PreTimeout)
	switch {
	case errors.Is(err, ErrNotSupported):
		g.log.Warn("watchdog driver has no pretimeout", "err", err)
	case err != nil:
		return fmt.Errorf("watchdog: guard: set pretimeout: %w", err)
	default:
		g.log.Info("watchdog pretimeout set", "pretimeout", got)
	}
	return nil
}

// evaluate runs one check, turning a panic into a failure.
func evaluate(c *check, now time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return c.fn(now)
}

// tick runs every check and pets the device when allowed. Checks run in
// their own goroutines, bounded by the check timeout, and the KeepAlive runs
// without the Guard's lock: a check may call the Guard, a hung check cannot
// hang the Guard, and Status never waits on the device.
func (g *Guard) tick(now time.Time) {
	g.mu.Lock()
	checks := slices.Clone(g.checks)
	g.mu.Unlock()
	errs := g.evaluateAll(now, checks)
	if !g.decide(now, checks, errs) {
		return
	}
	err := g.dev.KeepAlive()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.st.PetErrors++
		if g.petErr == nil {
			g.log.Error("watchdog keepalive failed", "err", err)
		}
		g.petErr = err
		return
	}
	if g.petErr != nil {
		g.log.Info("watchdog keepalive works again")
		g.petErr = nil
	}
	g.st.Pets++
	g.st.LastPet = now
}

type evalResult struct {
	i   int
	err error
}

// evaluateAll runs every check not already running, each in a goroutine,
// and waits up to the check timeout (wall time) for them.
func (g *Guard) evaluateAll(now time.Time, checks []*check) []error {
	errs := make([]error, len(checks))
	done := make([]bool, len(checks))
	results := make(chan evalResult, len(checks)) // late finishers never block
	pending := 0
	wall := time.Now()
	g.mu.Lock()
	for i, c := range checks {
		if !c.running.IsZero() {
			errs[i], done[i] = fmt.Errorf("did not return for %v (check timeout %v)", wall.Sub(c.running).Round(time.Millisecond), g.checkTO), true
			continue
		}
		c.running = wall
		pending++
		g.evals.Add(1)
		go func() {
			defer g.evals.Done()
			err := evaluate(c, now)
			g.mu.Lock()
			c.running = time.Time{}
			g.mu.Unlock()
			results <- evalResult{i, err}
		}()
	}
	g.mu.Unlock()
	timer := time.NewTimer(g.checkTO)
	defer timer.Stop()
	for pending > 0 {
		select {
		case r := <-results:
			errs[r.i], done[r.i] = r.err, true
			pending--
		case <-timer.C:
			for i := range checks {
				if !done[i] {
					errs[i] = fmt.Errorf("did not return within the check timeout %v", g.checkTO)
				}
			}
			return errs
		}
	}
	return errs
}

// decide records the checks' results, expires holds, logs state changes and
// says whether to pet.
func (g *Guard) decide(now time.Time, checks []*check, errs []error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.Ticks++
	var fatal []string
	for i, c := range checks {
		err := errs[i]
		failing := err != nil
		if failing != c.failing || c.since.IsZero() {
			switch {
			case failing:
				g.log.Warn("watchdog check failing", "check", c.name, "fatal", c.fatal, "err", err)
			case !c.since.IsZero():
				g.log.Info("watchdog check recovered", "check", c.name)
			}
			c.since = now
		}
		c.failing, c.err = failing, err
		if failing && c.fatal {
			fatal = append(fatal, c.name)
		}
	}
	for id, h := range g.holds {
		if !now.Before(h.until) {
			delete(g.holds, id)
			g.log.Warn("watchdog maintenance hold expired", "reason", h.reason)
		}
	}
	g.st.Held, g.st.HoldUntil = len(g.holds) > 0, time.Time{}
	for _, h := range g.holds {
		if h.until.After(g.st.HoldUntil) {
			g.st.HoldUntil = h.until
		}
	}
	g.st.InGrace = now.Before(g.graceEnd)
	pet := len(fatal) == 0 || g.st.Held || g.st.InGrace
	if pet != g.st.Petting || g.st.Ticks == 1 {
		if pet {
			g.log.Info("watchdog petting", "held", g.st.Held, "grace", g.st.InGrace, "failing", fatal)
		} else {
			slices.Sort(fatal)
			g.log.Error("watchdog petting stopped: the machine resets unless checks recover", "failing", fatal, "timeout", g.st.Timeout)
		}
	}
	g.st.Petting = pet
	return pet
}
