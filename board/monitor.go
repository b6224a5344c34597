package board

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nvrfw/nvr/board/mdraid"
	"github.com/nvrfw/nvr/board/pmbus"
	"periph.io/x/conn/v3/gpio"
)

// Defaults of MonitorOptions.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultReadTimeout  = time.Second
	DefaultDebounce     = 50 * time.Millisecond
	DefaultEdgeWait     = 250 * time.Millisecond
	// RecentEvents is how many events Status keeps.
	RecentEvents = 32
)

// PSU is a power supply to watch.
type PSU struct {
	Name string
	Bus  pmbus.SMBus
}

// Bay is a drive bay to watch.
type Bay struct {
	Name string
	// Present is the presence input; PresentActiveHigh as in BaySpec.
	Present           gpio.PinIO
	PresentActiveHigh bool
	// FaultLED and LocateLED are outputs, nil when the bay has none;
	// LEDActiveLow as in BaySpec.
	FaultLED, LocateLED gpio.PinIO
	LEDActiveLow        bool
}

// MonitorOptions configure a Monitor.
type MonitorOptions struct {
	PSUs []PSU
	Bays []Bay
	// Arrays names the md arrays to watch (md0); Recording, one of them, is
	// the recording volume (shown in Status).
	Arrays    []string
	Recording string
	// Sysfs is the sysfs root. Default os.DirFS("/sys").
	Sysfs fs.FS
	// PollInterval is how often PSUs and arrays are read. Default
	// DefaultPollInterval (2s).
	PollInterval time.Duration
	// ReadTimeout bounds one PSU or array readout: past it the source is
	// shown unresponsive and not read again until the readout returns.
	// Default DefaultReadTimeout (1s).
	ReadTimeout time.Duration
	// Debounce is how long a bay's presence line must be quiet before its
	// level counts. Default DefaultDebounce (50ms).
	Debounce time.Duration
	// EdgeWait is how long a bay watcher waits for an edge before re-reading
	// the level (missed edges, lines without edge support); it also bounds
	// how long Run takes to return. Default DefaultEdgeWait (250ms).
	EdgeWait time.Duration
	// WatchdogReset makes Run report a WatchdogReset event first (from
	// watchdog.Device.Boot at startup).
	WatchdogReset bool
	// OnEvent receives every event, in order, from one goroutine; it may be
	// slow (events queue) but should not block forever. Default: events
	// are only kept in Status.
	OnEvent func(Event)
	// Now is the clock for event times. Default time.Now.
	Now func() time.Time
}

// PSUStatus is a PSU's last known state.
type PSUStatus struct {
	Name         string
	Known        bool // read at least once
	Present      bool
	Faults       []string
	Reading      pmbus.Reading // the last successful readout
	Err          string        // the last readout's error, if it failed
	Unresponsive bool          // a readout has been running past ReadTimeout
	Updated      time.Time
}

// BayStatus is a drive bay's state.
type BayStatus struct {
	Name                string
	Known               bool
	Present             bool
	Fault, Locate       bool // LED states as last set
	HasFault, HasLocate bool // the bay has the LED
	Since               time.Time
	Err                 string // why the presence line cannot be read
}

// ArrayStatus is an md array's state.
type ArrayStatus struct {
	Name         string
	Recording    bool
	Known        bool
	Health       mdraid.Health
	Progress     float64 // of a running sync, -1 when none
	Array        mdraid.Array
	Err          string
	Unresponsive bool
	Updated      time.Time
}

// Status is a snapshot of the board.
type Status struct {
	PSUs          []PSUStatus
	Bays          []BayStatus
	Arrays        []ArrayStatus
	WatchdogReset bool
	Events        []Event // the last RecentEvents events, oldest first
	Dropped       uint64  // events dropped because OnEvent fell far behind
}

// Monitor watches PSUs, bays and arrays and emits an Event per change.
type Monitor struct {
	opts MonitorOptions
	now  func() time.Time

	mu     sync.Mutex
	st     Status
	seq    uint64
	queue  []Event       // events not yet given to OnEvent
	wake   chan struct{} // signals the delivery goroutine
	psuSt  []psuState
	arrSt  []arrState
	bayIdx map[string]int

	running atomic.Bool
}

type psuState struct {
	psu      *pmbus.PSU
	inFlight bool
	started  time.Time
}

type arrState struct {
	inFlight bool
	started  time.Time
}

// maxQueue bounds the events waiting for a slow OnEvent.
const maxQueue = 4096

// NewMonitor validates opts and returns a Monitor; Run starts it.
func NewMonitor(opts MonitorOptions) (*Monitor, error) {
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.Debounce == 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.EdgeWait == 0 {
		opts.EdgeWait = DefaultEdgeWait
	}
	if opts.PollInterval < 0 || opts.ReadTimeout < 0 || opts.Debounce < 0 || opts.EdgeWait < 0 {
		return nil, errors.New("board: monitor: negative interval in options")
	}
	if opts.Sysfs == nil {
		opts.Sysfs = os.DirFS("/sys")
	}
	m := &Monitor{opts: opts, now: opts.Now, wake: make(chan struct{}, 1), bayIdx: map[string]int{}}
	if m.now == nil {
		m.now = time.Now
	}
	names := map[string]bool{}
	unique := func(kind, n string) error {
		if n == "" || names[kind+n] {
			return fmt.Errorf("board: monitor: %s name %q empty or repeated", kind, n)
		}
		names[kind+n] = true
		return nil
	}
	for _, p := range opts.PSUs {
		if err := unique("psu", p.Name); err != nil {
			return nil, err
		}
		if p.Bus == nil {
			return nil, fmt.Errorf("board: monitor: PSU %s has no bus", p.Name)
		}
		m.psuSt = append(m.psuSt, psuState{psu: pmbus.NewPSU(p.Bus)})
		m.st.PSUs = append(m.st.PSUs, PSUStatus{Name: p.Name})
	}
	for i, b := range opts.Bays {
		if err := unique("bay", b.Name); err != nil {
			return nil, err
		}
		if b.Present == nil {
			return nil, fmt.Errorf("board: monitor: bay %s has no presence pin", b.Name)
		}
		m.bayIdx[b.Name] = i
		m.st.Bays = append(m.st.Bays, BayStatus{Name: b.Name, HasFault: b.FaultLED != nil, HasLocate: b.LocateLED != nil})
	}
	for _, a := range opts.Arrays {
		if err := unique("array", a); err != nil {
			return nil, err
		}
		m.arrSt = append(m.arrSt, arrState{})
		m.st.Arrays = append(m.st.Arrays, ArrayStatus{Name: a, Recording: a == opts.Recording, Progress: -1})
	}
	if opts.Recording != "" && !names["array"+opts.Recording] {
		return nil, fmt.Errorf("board: monitor: recording array %q is not among the arrays", opts.Recording)
	}
	return m, nil
}

// Status returns a snapshot. It never waits on hardware.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	s.PSUs = slices.Clone(s.PSUs)
	s.Bays = slices.Clone(s.Bays)
	s.Arrays = slices.Clone(s.Arrays)
	s.Events = slices.Clone(s.Events)
	return s
}

// emit records an event and queues it for OnEvent. Called with m.mu held.
func (m *Monitor) emit(kind EventKind, source string, faults []string, format string, a ...any) {
	m.seq++
	e := Event{Seq: m.seq, Time: m.now(), Kind: kind, Source: source, Faults: faults, Detail: fmt.Sprintf(format, a...)}
	m.st.Events = append(m.st.Events, e)
	if len(m.st.Events) > RecentEvents {
		m.st.Events = slices.Delete(m.st.Events, 0, len(m.st.Events)-RecentEvents)
	}
	if m.opts.OnEvent == nil {
		return
	}
	if len(m.queue) >= maxQueue {
		m.st.Dropped++
		return
	}
	m.queue = append(m.queue, e)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// deliver hands queued events to OnEvent in order until ctx ends, then
// delivers what is left.
func (m *Monitor) deliver(ctx context.Context) {
	for {
		m.mu.Lock()
		q := m.queue
		m.queue = nil
		m.mu.Unlock()
		for _, e := range q {
			m.opts.OnEvent(e)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-m.wake:
		case <-ctx.Done():
			m.mu.Lock()
			q := m.queue
			m.queue = nil
			m.mu.Unlock()
			for _, e := range q {
				m.opts.OnEvent(e)
			}
			return
		}
	}
}

type psuResult struct {
	i   int
	r   pmbus.Reading
	err error
}

type arrResult struct {
	i   int
	a   mdraid.Array
	err error
}

// ErrRunning is returned by Run while the Monitor is already running.
var ErrRunning = errors.New("board: monitor already running")

// Run watches until ctx ends, then joins every goroutine it started (a PSU
// readout blocked in the kernel delays the return until the adapter's
// timeout) and returns nil. A Monitor runs once at a time (ErrRunning).
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	dctx, dcancel := context.WithCancel(context.Background())
	var dwg sync.WaitGroup
	if m.opts.OnEvent != nil {
		dwg.Add(1)
		go func() { defer dwg.Done(); m.deliver(dctx) }()
	}
	defer func() {
		// Bay watchers notice within EdgeWait (periph's Halt is not safe
		// to call concurrently with WaitForEdge on gpioioctl lines).
		cancel()
		wg.Wait()
		// Delivery stops last, after every producer has been joined, so
		// every event emitted reaches OnEvent.
		dcancel()
		dwg.Wait()
	}()
	if m.opts.WatchdogReset {
		m.mu.Lock()
		m.st.WatchdogReset = true
		m.emit(WatchdogReset, "watchdog", nil, "the last reset was a watchdog reset")
		m.mu.Unlock()
	}
	m.ledsOff()

	samples := make(chan baySample)
	for i := range m.opts.Bays {
		wg.Add(1)
		go func() { defer wg.Done(); m.watchBay(ctx, i, samples) }()
	}
	// Buffered for every possible readout in flight: a readout finishing
	// after Run stopped listening never blocks.
	psuRes := make(chan psuResult, len(m.psuSt))
	arrRes := make(chan arrResult, len(m.arrSt))
	poll := func() { m.startReadouts(&wg, psuRes, arrRes) }
	t := time.NewTicker(m.opts.PollInterval)
	defer t.Stop()
	poll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			poll()
		case s := <-samples:
			m.baySample(s)
		case r := <-psuRes:
			m.psuResult(r)
		case r := <-arrRes:
			m.arrResult(r)
		}
	}
}

// startReadouts starts a readout of every PSU and array that has none in
// flight, and marks those whose readout runs past ReadTimeout unresponsive.
func (m *Monitor) startReadouts(wg *sync.WaitGroup, psuRes chan<- psuResult, arrRes chan<- arrResult) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.psuSt {
		ps := &m.psuSt[i]
		if ps.inFlight {
			if now.Sub(ps.started) > m.opts.ReadTimeout {
				m.st.PSUs[i].Unresponsive = true
			}
			continue
		}
		ps.inFlight, ps.started = true, now
		wg.Add(1)
		go func(psu *pmbus.PSU) {
			defer wg.Done()
			r, err := psu.Read()
			psuRes <- psuResult{i, r, err}
		}(ps.psu)
	}
	for i := range m.arrSt {
		as := &m.arrSt[i]
		if as.inFlight {
			if now.Sub(as.started) > m.opts.ReadTimeout {
				m.st.Arrays[i].Unresponsive = true
			}
			continue
		}
		as.inFlight, as.started = true, now
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			a, err := mdraid.Read(m.opts.Sysfs, name)
			arrRes <- arrResult{i, a, err}
		}(m.opts.Arrays[i])
	}
}

func (m *Monitor) psuResult(r psuResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.psuSt[r.i].inFlight = false
	st := &m.st.PSUs[r.i]
	st.Unresponsive = false
	st.Updated = m.now()
	if r.err != nil {
		st.Err = r.err.Error()
		return
	}
	st.Err = ""
	st.Reading = r.r
	name := st.Name
	if !r.r.Present {
		if !st.Known || st.Present {
			m.emit(PSULost, name, nil, "PSU does not answer on the bus")
		}
		st.Known, st.Present, st.Faults = true, false, nil
		return
	}
	if st.Known && !st.Present {
		m.emit(PSURestored, name, nil, "PSU answers again (%s %s, serial %s)", r.r.Identity.Manufacturer, r.r.Identity.Model, r.r.Identity.Serial)
	}
	st.Known, st.Present = true, true
	faults := r.r.Faults()
	if !slices.Equal(faults, st.Faults) {
		if len(faults) > 0 {
			m.emit(PSUFaulted, name, faults, "PSU reports faults (STATUS_WORD %#04x)", r.r.StatusWord)
		} else {
			m.emit(PSUFaultCleared, name, nil, "PSU faults cleared")
		}
	}
	st.Faults = faults
}

func (m *Monitor) arrResult(r arrResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.arrSt[r.i].inFlight = false
	st := &m.st.Arrays[r.i]
	st.Unresponsive = false
	st.Updated = m.now()
	h := r.a.Health()
	if r.err != nil {
		st.Err = r.err.Error()
		if !errors.Is(r.err, mdraid.ErrNoArray) {
			return // unreadable: keep the last state
		}
		h = mdraid.Failed
	} else {
		st.Err = ""
		if st.Known {
			m.driveErrors(st.Name, st.Array, r.a)
		}
		st.Array = r.a
	}
	st.Progress = r.a.Progress()
	prev, known := st.Health, st.Known
	st.Health, st.Known = h, true
	if known && h == prev {
		return
	}
	name := st.Name
	switch h {
	case mdraid.Degraded:
		m.emit(RAIDDegraded, name, nil, "array degraded: %d of %d members missing, not rebuilding", r.a.Degraded, r.a.RaidDisks)
	case mdraid.Rebuilding:
		m.emit(RAIDRebuilding, name, nil, "array rebuilding (%.1f%% done)", max(st.Progress, 0)*100)
	case mdraid.Failed:
		why := r.a.State
		if r.err != nil {
			why = r.err.Error()
		}
		m.emit(RAIDFailed, name, nil, "array failed: %s", why)
	case mdraid.Clean, mdraid.Resyncing:
		if known && prev != mdraid.Clean && prev != mdraid.Resyncing {
			m.emit(RAIDRebuilt, name, nil, "array whole again (was %s)", prev)
		}
	}
}

// driveErrors emits DriveErrors for every member of the array whose error
// counters grew since the last reading. The caller holds mu.
func (m *Monitor) driveErrors(name string, prev, cur mdraid.Array) {
	for _, c := range cur.Members {
		for _, p := range prev.Members {
			if p.Device != c.Device {
				continue
			}
			dRead := c.ReadErrors - p.ReadErrors
			dIO := int64(0)
			if c.IOErrors >= 0 && p.IOErrors >= 0 {
				dIO = c.IOErrors - p.IOErrors
			}
			if dRead > 0 || dIO > 0 {
				m.emit(DriveErrors, name, nil, "drive %s: %d new read errors corrected by md (%d in all), %d new I/O errors (%d in all)",
					c.Device, max(dRead, 0), c.ReadErrors, max(dIO, 0), max(c.IOErrors, 0))
			}
		}
	}
}
