package timesync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Clock is the system clock the Syncer corrects.
type Clock interface {
	// Step moves the clock by d at once (negative: back).
	Step(d time.Duration) error
	// Slew moves the clock by d gradually, without a jump.
	Slew(d time.Duration) error
}

// Options configures a Syncer. The zero value of every field but Servers
// means its default.
type Options struct {
	// Servers returns the NTP servers to ask, in order of preference; it is
	// called every round, so configuration changes apply live. Required.
	Servers func() []string
	// Port is the servers' UDP port; 0 means 123.
	Port int
	// Interval is the time between successful rounds; 0 means 64 s.
	Interval time.Duration
	// RetryInterval is the time after a round no server answered; 0 means
	// 16 s.
	RetryInterval time.Duration
	// Timeout bounds one server's answer; 0 means 2 s.
	Timeout time.Duration
	// StepThreshold: offsets up to it are slewed, larger ones stepped; 0
	// means 500 ms.
	StepThreshold time.Duration
	// UnsyncedAfter is how long without a valid answer makes the clock
	// unsynchronised; 0 means 15 minutes.
	UnsyncedAfter time.Duration
	// Clock is corrected; nil only measures.
	Clock Clock
	// Now is the wall clock; nil means time.Now. T1 and T4 of a query are
	// measured as one Now plus the monotonic time elapsed.
	Now func() time.Time
	// OnChange is called (from Run's goroutine) when the clock's state
	// changes: synchronised; not synchronised for UnsyncedAfter (never
	// synced since start, or the last answer too old, or corrections
	// failing) while servers are configured; or no server configured.
	OnChange func(Status)
	// Logger receives sync decisions; nil discards.
	Logger *slog.Logger
}

// Status is the Syncer's state.
type Status struct {
	// Servers are the servers of the last round.
	Servers []string `json:"servers"`
	// Synced: a server answered within UnsyncedAfter.
	Synced bool `json:"synced"`
	// Server answered last; Stratum is its stratum.
	Server  string `json:"server,omitempty"`
	Stratum int    `json:"stratum,omitempty"`
	// Offset is the last measured offset of the server's clock from ours
	// (positive: ours was behind), before correction; Delay the round trip.
	Offset time.Duration `json:"offset_ns"`
	Delay  time.Duration `json:"delay_ns"`
	// LastSync is the last valid answer; LastAttempt the last round.
	LastSync    time.Time `json:"last_sync,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// LastError is why the last round failed ("" after a success).
	LastError string `json:"last_error,omitempty"`
	// Adjusting says how the clock is corrected: "step", "slew", or
	// "monitor" (no Clock: measure only).
	Adjusting string `json:"adjusting"`
	// Steps and Slews count corrections made.
	Steps int `json:"steps"`
	Slews int `json:"slews"`
}

// Syncer keeps a Clock on the servers' time.
type Syncer struct {
	opts    Options
	log     *slog.Logger
	trigger chan struct{}

	mu       sync.Mutex
	st       Status
	stepped  bool      // a first correction was made: later small offsets slew
	since    time.Time // first round
	reported state     // last state given to OnChange
}

// state is what OnChange was last told.
type state int8

const (
	stateUnknown state = iota
	stateSynced
	stateUnsynced
	stateOff // no server configured
)

// New validates opts and returns a Syncer; Run starts it.
func New(opts Options) (*Syncer, error) {
	if opts.Servers == nil {
		return nil, errors.New("timesync: Options.Servers is required")
	}
	if opts.Port == 0 {
		opts.Port = 123
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("timesync: port %d out of range", opts.Port)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Interval, 64*time.Second)
	def(&opts.RetryInterval, 16*time.Second)
	def(&opts.Timeout, 2*time.Second)
	def(&opts.StepThreshold, 500*time.Millisecond)
	def(&opts.UnsyncedAfter, 15*time.Minute)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{opts: opts, log: opts.Logger, trigger: make(chan struct{}, 1)}
	s.st.Adjusting = "monitor"
	if opts.Clock != nil {
		s.st.Adjusting = "step"
	}
	return s, nil
}

// Status returns the current state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Servers = append([]string(nil), s.st.Servers...)
	st.Synced = s.synced(s.opts.Now())
	return st
}

// Trigger asks for a round now (after a configuration change).
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run syncs until ctx ends. It returns nil at the end of ctx.
func (s *Syncer) Run(ctx context.Context) error {
	for {
		wait := s.opts.RetryInterval
		if s.Round(ctx) == nil {
			wait = s.opts.Interval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.trigger:
			t.Stop()
		case <-t.C:
		}
	}
}

// Round asks the servers in order and corrects the clock from the first
// valid answer. It returns why no server answered (nil after a success, and
// nil when no server is configured).
func (s *Syncer) Round(ctx context.Context) error {
	servers := s.opts.Servers()
	now := s.opts.Now()
	s.mu.Lock()
	s.st.Servers = append([]string(nil), servers...)
	s.st.LastAttempt = now
	if s.since.IsZero() {
		s.since = now
	}
	s.mu.Unlock()
	defer s.report()
	if len(servers) == 0 {
		s.setFailed("no NTP server configured")
		return nil
	}
	var errs []error
	for _, srv := range servers {
		smp, err := s.Query(ctx, srv)
		if err != nil {
			s.log.Warn("NTP server did not give the time", "server", srv, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		s.apply(srv, smp)
		return nil
	}
	err := errors.Join(errs...)
	s.setFailed(err.Error())
	return err
}

// setFailed records why a round failed.
func (s *Syncer) setFailed(why string) {
	s.mu.Lock()
	s.st.LastError = why
	s.mu.Unlock()
}

// synced reports whether st had a valid answer within UnsyncedAfter. The
// caller holds mu.
func (s *Syncer) synced(now time.Time) bool {
	return !s.st.LastSync.IsZero() && now.Sub(s.st.LastSync) <= s.opts.UnsyncedAfter
}

// report updates Status.Synced and calls OnChange when the state changed.
func (s *Syncer) report() {
	now := s.opts.Now()
	s.mu.Lock()
	s.st.Synced = s.synced(now)
	next := s.reported
	switch {
	case len(s.st.Servers) == 0:
		next = stateOff
	case s.st.Synced:
		next = stateSynced
	case now.Sub(maxTime(s.st.LastSync, s.since)) > s.opts.UnsyncedAfter:
		next = stateUnsynced
	}
	st, changed := s.st, next != s.reported
	s.reported = next
	s.mu.Unlock()
	if !changed {
		return
	}
	switch next {
	case stateSynced:
		s.log.Info("clock synchronised", "server", st.Server, "offset", st.Offset)
	case stateUnsynced:
		s.log.Warn("clock not synchronised", "last_sync", st.LastSync, "err", st.LastError)
	}
	if s.opts.OnChange != nil {
		s.opts.OnChange(st)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Sample is one measurement against a server.
type Sample struct {
	Offset  time.Duration // server minus our clock
	Delay   time.Duration // round trip, less the server's processing
	Stratum int
}

// Query asks one server (a host name or address, optionally with a port)
// for the time.
func (s *Syncer) Query(ctx context.Context, server string) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(server, strconv.Itoa(s.opts.Port))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Sample{}, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var c [8]byte
	if _, err := rand.Read(c[:]); err != nil {
		return Sample{}, fmt.Errorf("request cookie: %w", err)
	}
	cookie := binary.BigEndian.Uint64(c[:])
	t1 := s.opts.Now()
	mono := time.Now()
	if _, err := conn.Write(Request(cookie)); err != nil {
		return Sample{}, fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return Sample{}, fmt.Errorf("no answer: %w", err)
		}
		r, err := Parse(buf[:n], cookie)
		if errors.Is(err, ErrNotOurs) {
			continue // a stale reply to an earlier query: wait for ours
		}
		if err != nil {
			return Sample{}, err
		}
		t4 := t1.Add(time.Since(mono))
		offset := (r.Receive.Sub(t1) + r.Transmit.Sub(t4)) / 2
		delay := t4.Sub(t1) - r.Transmit.Sub(r.Receive)
		return Sample{Offset: offset, Delay: max(delay, 0), Stratum: int(r.Stratum)}, nil
	}
}

// apply corrects the clock from a sample of server.
func (s *Syncer) apply(server string, smp Sample) {
	s.mu.Lock()
	first := !s.stepped
	s.mu.Unlock()
	how := "monitor"
	var err error
	abs := smp.Offset
	if abs < 0 {
		abs = -abs
	}
	if c := s.opts.Clock; c != nil {
		if first || abs > s.opts.StepThreshold {
			how, err = "step", c.Step(smp.Offset)
		} else {
			how, err = "slew", c.Slew(smp.Offset)
		}
	}
	s.mu.Lock()
	s.st.Server, s.st.Stratum, s.st.Offset, s.st.Delay = server, smp.Stratum, smp.Offset, smp.Delay
	s.st.Adjusting = how
	if err != nil {
		s.st.LastError = fmt.Sprintf("%s the clock by %v: %v", how, smp.Offset, err)
	} else {
		s.st.LastError = ""
		s.st.LastSync = s.opts.Now()
		s.stepped = true
		switch how {
		case "step":
			s.st.Steps++
		case "slew":
			s.st.Slews++
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("clock correction failed", "server", server, "offset", smp.Offset, "how", how, "err", err)
	} else {
		s.log.Debug("clock measured", "server", server, "offset", smp.Offset, "delay", smp.Delay, "stratum", smp.Stratum, "how", how)
	}
}
