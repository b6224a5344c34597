package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Component is one long-lived part of the appliance (the recorder, the
// console, the API server, the watchdog, ...). Run must return nil promptly
// once ctx is done; any other return, or a panic, is a failure after which the
// supervisor restarts it with backoff.
type Component struct {
	Name string
	Run  func(ctx context.Context) error
}

// ComponentState is where a supervised component is in its life.
type ComponentState string

// Component states.
const (
	StateRunning ComponentState = "running"
	StateBackoff ComponentState = "backoff"
	StateStopped ComponentState = "stopped"
)

// ComponentStatus is a snapshot of one supervised component.
type ComponentStatus struct {
	Name      string         `json:"name"`
	State     ComponentState `json:"state"`
	Restarts  int            `json:"restarts"`
	LastError string         `json:"last_error,omitempty"`
	Since     time.Time      `json:"since"`
}

// SupervisorOptions configures a Supervisor. The zero value is usable.
type SupervisorOptions struct {
	// Logger receives one line per failure and restart; nil discards.
	Logger *slog.Logger
	// MinBackoff is the first restart delay; 0 means 500ms. It doubles per
	// consecutive failure up to MaxBackoff (0 means 30s).
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a component must run before its backoff resets;
	// 0 means 60s.
	StableAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done; nil means a real timer. Tests inject
	// a fake to run restarts without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Supervisor runs components concurrently and keeps each alive: a component
// that fails or panics is logged and restarted with capped exponential
// backoff, and never takes the others down. Its methods are safe for
// concurrent use.
type Supervisor struct {
	opts  SupervisorOptions
	comps []Component

	mu     sync.Mutex
	status map[string]*ComponentStatus
}

// NewSupervisor returns a supervisor for comps. Names must be unique and
// non-empty.
func NewSupervisor(opts SupervisorOptions, comps ...Component) (*Supervisor, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("supervisor: MaxBackoff %v below MinBackoff %v", opts.MaxBackoff, opts.MinBackoff)
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	s := &Supervisor{opts: opts, status: make(map[string]*ComponentStatus)}
	for _, c := range comps {
		if c.Name == "" || c.Run == nil {
			return nil, errors.New("supervisor: component needs a name and a Run func")
		}
		if _, dup := s.status[c.Name]; dup {
			return nil, fmt.Errorf("supervisor: duplicate component %q", c.Name)
		}
		s.status[c.Name] = &ComponentStatus{Name: c.Name, State: StateStopped}
		s.comps = append(s.comps, c)
	}
	return s, nil
}

// Run starts every component and returns once ctx is done and all of them
// have returned.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range s.comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.keepAlive(ctx, c)
		}()
	}
	wg.Wait()
	return nil
}

// Status returns a snapshot of every component, in registration order.
func (s *Supervisor) Status() []ComponentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ComponentStatus, 0, len(s.comps))
	for _, c := range s.comps {
		out = append(out, *s.status[c.Name])
	}
	return out
}

func (s *Supervisor) keepAlive(ctx context.Context, c Component) {
	log := s.opts.Logger.With("component", c.Name)
	backoff := s.opts.MinBackoff
	for {
		start := s.opts.Now()
		s.set(c.Name, func(st *ComponentStatus) { st.State, st.Since = StateRunning, start })
		err := runGuarded(ctx, c)
		if ctx.Err() != nil {
			s.set(c.Name, func(st *ComponentStatus) { st.State, st.Since = StateStopped, s.opts.Now() })
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("component stopped with error", "err", err)
			}
			return
		}
		if err == nil {
			err = errors.New("returned before shutdown")
		}
		if s.opts.Now().Sub(start) >= s.opts.StableAfter {
			backoff = s.opts.MinBackoff
		}
		s.set(c.Name, func(st *ComponentStatus) {
			st.State, st.Since, st.LastError = StateBackoff, s.opts.Now(), err.Error()
			st.Restarts++
		})
		log.Error("component failed; restarting", "err", err, "backoff", backoff)
		if s.opts.Sleep(ctx, backoff) != nil {
			s.set(c.Name, func(st *ComponentStatus) { st.State, st.Since = StateStopped, s.opts.Now() })
			return
		}
		backoff = min(backoff*2, s.opts.MaxBackoff)
	}
}

// runGuarded runs c, turning a panic into an error carrying the stack.
func runGuarded(ctx context.Context, c Component) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Run(ctx)
}

func (s *Supervisor) set(name string, f func(*ComponentStatus)) {
	s.mu.Lock()
	f(s.status[name])
	s.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
