package board

import (
	"context"
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// ErrNoSuchBay is returned when SetLocate or SetFault names a bay the Monitor does not have.
var ErrNoSuchBay = errors.New("board: no such bay")

// ErrNoLED is returned when the bay has no such LED.
var ErrNoLED = errors.New("board: bay has no such LED")

type baySample struct {
	i       int
	present bool
	err     error
}

// maxBounces bounds the edges one debounce absorbs.
const maxBounces = 1000

// watchBay reports bay i's debounced presence on out: once at start, then
// at every change that stays stable for Debounce.
func (m *Monitor) watchBay(ctx context.Context, i int, out chan<- baySample) {
	b := m.opts.Bays[i]
	present := func() bool { return (b.Present.Read() == gpio.High) == b.PresentActiveHigh }
	send := func(s baySample) bool {
		select {
		case out <- s:
			return true
		case <-ctx.Done():
			return false
		}
	}
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	edges := b.Present.In(gpio.PullNoChange, gpio.BothEdges) == nil
	if !edges {
		if err := b.Present.In(gpio.PullNoChange, gpio.NoEdge); err != nil {
			send(baySample{i: i, err: fmt.Errorf("bay %s: configure presence line %s: %w", b.Name, b.Present, err)})
			return
		}
	}
	last := present()
	if !send(baySample{i: i, present: last}) {
		return
	}
	for ctx.Err() == nil {
		if edges {
			if !b.Present.WaitForEdge(m.opts.EdgeWait) && present() == last {
				continue // no edge, no missed change
			}
		} else if !sleep(m.opts.EdgeWait) || present() == last {
			continue
		}
		// Something moved: wait until the line is quiet for Debounce.
		if edges {
			n := 0
			for n < maxBounces && ctx.Err() == nil && b.Present.WaitForEdge(m.opts.Debounce) {
				n++
			}
		} else if !sleep(m.opts.Debounce) {
			return
		}
		if v := present(); v != last && ctx.Err() == nil {
			last = v
			if !send(baySample{i: i, present: v}) {
				return
			}
		}
	}
}

func (m *Monitor) baySample(s baySample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &m.st.Bays[s.i]
	if s.err != nil {
		st.Err = s.err.Error()
		return
	}
	prev, known := st.Present, st.Known
	st.Known, st.Present = true, s.present
	if !known {
		st.Since = m.now()
		return
	}
	if prev == s.present {
		return
	}
	st.Since = m.now()
	if s.present {
		m.emit(BayInserted, st.Name, nil, "drive inserted")
	} else {
		m.emit(BayRemoved, st.Name, nil, "drive removed")
	}
}

func (m *Monitor) setLED(name string, locate, on bool) error {
	i, ok := m.bayIdx[name]
	if !ok {
		return fmt.Errorf("board: bay %q: %w", name, ErrNoSuchBay)
	}
	b := m.opts.Bays[i]
	pin, what := b.FaultLED, "fault"
	if locate {
		pin, what = b.LocateLED, "locate"
	}
	if pin == nil {
		return fmt.Errorf("board: bay %s: %s LED: %w", name, what, ErrNoLED)
	}
	lvl := gpio.Level(on != b.LEDActiveLow)
	if err := pin.Out(lvl); err != nil {
		return fmt.Errorf("board: bay %s: set %s LED on %s: %w", name, what, pin, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if locate {
		m.st.Bays[i].Locate = on
	} else {
		m.st.Bays[i].Fault = on
	}
	return nil
}

// SetLocate lights or darkens a bay's locate LED.
func (m *Monitor) SetLocate(bay string, on bool) error { return m.setLED(bay, true, on) }

// SetFault lights or darkens a bay's fault LED.
func (m *Monitor) SetFault(bay string, on bool) error { return m.setLED(bay, false, on) }

// ledsOff darkens every LED at start; errors show up when the operator
// sets the LED.
func (m *Monitor) ledsOff() {
	for _, b := range m.opts.Bays {
		for _, locate := range []bool{false, true} {
			_ = m.setLED(b.Name, locate, false)
		}
	}
}
