package board_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/mdraid"
	"github.com/nvrfw/nvr/board/mdraid/mdraidtest"
	"github.com/nvrfw/nvr/board/pmbus"
	"github.com/nvrfw/nvr/board/pmbus/pmbustest"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// waitFor polls cond for up to 5s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// sink collects events from OnEvent.
type sink struct {
	mu  sync.Mutex
	evs []board.Event
}

func (s *sink) on(e board.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, e)
}

func (s *sink) events() []board.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

func (s *sink) kinds() []string {
	var out []string
	for _, e := range s.events() {
		k := e.Kind.String() + " " + e.Source
		if len(e.Faults) > 0 {
			k += " " + strings.Join(e.Faults, ",")
		}
		out = append(out, k)
	}
	return out
}

// bench is a fake board: two PSUs, two bays (active-low presence with LEDs),
// md0 on a fake sysfs.
type bench struct {
	psus   []*pmbustest.PSU
	pins   []*gpiotest.Pin
	leds   []*gpiotest.Pin
	sys    *mdraidtest.Sysfs
	events *sink
	m      *board.Monitor
	stop   func()
}

func newBench(t *testing.T, mut func(*board.MonitorOptions)) *bench {
	t.Helper()
	b := &bench{sys: mdraidtest.NewSysfs(), events: &sink{}}
	b.sys.Set(mdraidtest.Mirror("md0", "clean", 0, 0))
	opts := board.MonitorOptions{
		Arrays: []string{"md0"}, Recording: "md0", Sysfs: b.sys,
		PollInterval: 5 * time.Millisecond, ReadTimeout: 50 * time.Millisecond,
		EdgeWait: 20 * time.Millisecond, OnEvent: b.events.on,
	}
	for i := 0; i < 2; i++ {
		p := pmbustest.NewHealthy()
		b.psus = append(b.psus, p)
		opts.PSUs = append(opts.PSUs, board.PSU{Name: fmt.Sprintf("PSU%d", i+1), Bus: p})
		pin := &gpiotest.Pin{N: fmt.Sprintf("present%d", i), L: gpio.Low, EdgesChan: make(chan gpio.Level, 16)}
		fault := &gpiotest.Pin{N: fmt.Sprintf("fault%d", i), L: gpio.High}
		locate := &gpiotest.Pin{N: fmt.Sprintf("locate%d", i), L: gpio.High}
		b.pins = append(b.pins, pin)
		b.leds = append(b.leds, fault, locate)
		opts.Bays = append(opts.Bays, board.Bay{Name: fmt.Sprintf("BAY%d", i), Present: pin, FaultLED: fault, LocateLED: locate})
	}
	if mut != nil {
		mut(&opts)
	}
	m, err := board.NewMonitor(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.m = m
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	b.stop = func() {
		if cancel == nil {
			return
		}
		cancel()
		cancel = nil
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		waitFor(t, "monitor goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
	}
	t.Cleanup(b.stop)
	waitFor(t, "first readouts", func() bool {
		st := m.Status()
		for _, p := range st.PSUs {
			if !p.Known {
				return false
			}
		}
		for _, x := range st.Bays {
			if !x.Known {
				return false
			}
		}
		for _, a := range st.Arrays {
			if !a.Known {
				return false
			}
		}
		return true
	})
	return b
}

// expect waits until the events so far are want, then checks nothing more
// arrives over a few polls.
func (b *bench) expect(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.events.kinds()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // 20 polls, 5 edge waits: room for duplicates to show
	if got := b.events.kinds(); !slices.Equal(got, want) {
		t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestMonitorEventSequence(t *testing.T) {
	b := newBench(t, func(o *board.MonitorOptions) { o.WatchdogReset = true })
	want := []string{"watchdog-reset watchdog"}
	b.expect(t, want...)

	// A drive is pulled (presence goes high), the array degrades.
	b.pins[1].EdgesChan <- gpio.High
	want = append(want, "bay-removed BAY1")
	b.expect(t, want...)
	b.sys.Set(mdraidtest.Mirror("md0", "degraded", 0, 0))
	want = append(want, "raid-degraded md0")
	b.expect(t, want...)

	// It is re-inserted, contacts bouncing; md rebuilds onto it.
	for _, l := range []gpio.Level{gpio.Low, gpio.High, gpio.Low, gpio.High, gpio.Low} {
		b.pins[1].EdgesChan <- l
	}
	want = append(want, "bay-inserted BAY1")
	b.expect(t, want...)
	b.sys.Set(mdraidtest.Mirror("md0", "rebuilding", 100, 1000))
	want = append(want, "raid-rebuilding md0")
	b.expect(t, want...)
	b.sys.Set(mdraidtest.Mirror("md0", "rebuilding", 500, 1000))
	waitFor(t, "rebuild progress", func() bool { return b.m.Status().Arrays[0].Progress == 0.5 })
	b.sys.Set(mdraidtest.Mirror("md0", "clean", 0, 0))
	want = append(want, "raid-rebuilt md0")
	b.expect(t, want...)

	// PSU2 loses AC, then is pulled, then comes back healthy.
	b.psus[1].SetByte(pmbus.CmdStatusInput, 0x18)
	b.psus[1].SetWord(pmbus.CmdStatusWord, 0x2848)
	want = append(want, "psu-faulted PSU2 OFF,POWER_GOOD_NEGATED,VIN_UV_FAULT,OFF_LOW_VIN")
	b.expect(t, want...)
	b.psus[1].SetPresent(false)
	want = append(want, "psu-lost PSU2")
	b.expect(t, want...)
	b.psus[1].SetWord(pmbus.CmdStatusWord, 0)
	b.psus[1].SetPresent(true)
	want = append(want, "psu-restored PSU2")
	b.expect(t, want...)

	b.stop()
	evs := b.events.events()
	st := b.m.Status()
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has Seq %d", i, e.Seq)
		}
	}
	if !slices.EqualFunc(evs, st.Events, func(a, b board.Event) bool { return a.Seq == b.Seq && a.Kind == b.Kind }) {
		t.Errorf("Status().Events differ from delivered events")
	}
	if !st.WatchdogReset || !st.Bays[1].Present || !st.PSUs[1].Present || st.Arrays[0].Health != mdraid.Clean || !st.Arrays[0].Recording {
		t.Errorf("final status %+v", st)
	}
	if s := evs[len(evs)-1].String(); !strings.Contains(s, "psu-restored PSU2: PSU answers again (ACME PSU-550, serial SN0001)") {
		t.Errorf("event text %q", s)
	}
}

func TestMonitorInitialBadStates(t *testing.T) {
	b := newBench(t, func(o *board.MonitorOptions) {
		o.Arrays = append(o.Arrays, "md9") // missing from sysfs
	})
	// Built healthy; md9 absent is reported as failed at the first read.
	b.expect(t, "raid-failed md9")
	if st := b.m.Status(); !strings.Contains(st.Arrays[1].Err, "no such array") {
		t.Errorf("md9 status %+v", st.Arrays[1])
	}
}

func TestMonitorDebounce(t *testing.T) {
	b := newBench(t, nil)
	// A glitch shorter than the debounce: high then low again at once.
	b.pins[0].EdgesChan <- gpio.High
	b.pins[0].EdgesChan <- gpio.Low
	b.expect(t)
	// A real removal with bounces settles to one event.
	for _, l := range []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low, gpio.High} {
		b.pins[0].EdgesChan <- l
	}
	b.expect(t, "bay-removed BAY0")
}

func TestMonitorPollsLinesWithoutEdges(t *testing.T) {
	var pin *gpiotest.Pin
	b := newBench(t, func(o *board.MonitorOptions) {
		pin = &gpiotest.Pin{N: "noedge", L: gpio.High} // no EdgesChan: In(BothEdges) fails
		o.Bays = append(o.Bays, board.Bay{Name: "BAY9", Present: pin, PresentActiveHigh: true})
	})
	if st := b.m.Status(); !st.Bays[2].Present {
		t.Fatal("active-high bay with a high line not present")
	}
	_ = pin.Out(gpio.Low)
	b.expect(t, "bay-removed BAY9")
}

func TestMonitorHungPSUDoesNotBlock(t *testing.T) {
	b := newBench(t, nil)
	b.psus[0].Stall()
	waitFor(t, "PSU1 unresponsive", func() bool { return b.m.Status().PSUs[0].Unresponsive })
	start := time.Now()
	for i := 0; i < 100; i++ {
		_ = b.m.Status()
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 Status calls took %v with a hung PSU", d)
	}
	// Other sources still report.
	b.psus[1].SetPresent(false)
	b.expect(t, "psu-lost PSU2")
	b.psus[0].Unstall()
	waitFor(t, "PSU1 responsive", func() bool { return !b.m.Status().PSUs[0].Unresponsive })
	b.expect(t, "psu-lost PSU2")
}

func TestMonitorLEDs(t *testing.T) {
	b := newBench(t, func(o *board.MonitorOptions) { o.Bays[1].LEDActiveLow = true })
	for i, l := range b.leds {
		want := gpio.Low
		if i >= 2 {
			want = gpio.High // bay 1's LEDs are active low: off is high
		}
		if l.Read() != want {
			t.Errorf("LED %s not off at start: %v", l, l.Read())
		}
	}
	for _, tc := range []struct {
		bay    string
		locate bool
		pin    *gpiotest.Pin
		want   gpio.Level
	}{
		{"BAY0", true, b.leds[1], gpio.High},
		{"BAY0", false, b.leds[0], gpio.High},
		{"BAY1", true, b.leds[3], gpio.Low},
	} {
		var err error
		if tc.locate {
			err = b.m.SetLocate(tc.bay, true)
		} else {
			err = b.m.SetFault(tc.bay, true)
		}
		if err != nil || tc.pin.Read() != tc.want {
			t.Errorf("%s locate=%v: %v, pin %v want %v", tc.bay, tc.locate, err, tc.pin.Read(), tc.want)
		}
	}
	st := b.m.Status()
	if !st.Bays[0].Locate || !st.Bays[0].Fault || !st.Bays[1].Locate || st.Bays[1].Fault {
		t.Errorf("LED status %+v", st.Bays)
	}
	if err := b.m.SetLocate("BAY7", true); err == nil || !strings.Contains(err.Error(), "no such bay") {
		t.Errorf("unknown bay: %v", err)
	}
}

func TestNewMonitorValidates(t *testing.T) {
	p := pmbustest.NewHealthy()
	for _, o := range []board.MonitorOptions{
		{PSUs: []board.PSU{{Name: "A", Bus: p}, {Name: "A", Bus: p}}},
		{PSUs: []board.PSU{{Name: "A"}}},
		{Bays: []board.Bay{{Name: "B"}}},
		{Arrays: []string{"md0"}, Recording: "md1"},
		{PollInterval: -1},
	} {
		if _, err := board.NewMonitor(o); err == nil {
			t.Errorf("NewMonitor(%+v) accepted", o)
		}
	}
}

// TestMonitorBayLatency measures how long a clean bay change takes to reach
// OnEvent with the default 50ms debounce.
func TestMonitorBayLatency(t *testing.T) {
	b := newBench(t, func(o *board.MonitorOptions) { o.Debounce = 0 })
	start := time.Now()
	b.pins[0].EdgesChan <- gpio.High
	waitFor(t, "bay event", func() bool { return len(b.events.events()) == 1 })
	d := time.Since(start)
	if d < board.DefaultDebounce {
		t.Errorf("event after %v, before the %v debounce", d, board.DefaultDebounce)
	}
	t.Logf("bay removal reported %v after the edge (debounce %v)", d, board.DefaultDebounce)
}

func TestMonitorRunsOnce(t *testing.T) {
	b := newBench(t, nil)
	if err := b.m.Run(context.Background()); !errors.Is(err, board.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}
