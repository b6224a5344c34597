// Package events is the appliance's event log and alarm set: components
// publish events (a PSU lost, a camera offline, a slot sealed suspect, a
// watchdog reset seen at boot); the hub keeps a bounded history, fans events
// out to subscribers (the API's server-sent events, the console), and tracks
// which alarms are active until their clearing event arrives.
//
// Concurrency: a Hub is safe for concurrent use. Publish never blocks: a
// subscriber that falls behind loses its oldest undelivered events and is told
// how many through a synthetic "events.dropped" event.
package events

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Severity orders events by urgency.
type Severity string

// Severities.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Event is one thing that happened.
type Event struct {
	ID       uint64            // assigned by the hub, increasing
	Time     time.Time         // when it happened (the hub's clock if zero)
	Kind     string            // dotted, e.g. "psu.lost", "camera.offline", "store.slot_suspect"
	Severity Severity          // Info, Warning or Critical
	Source   string            // what it is about: "psu1", "cam3", "bay2", "md0"
	Message  string            // one line for operators
	Data     map[string]string // details
	// Alarm, when non-empty, raises the alarm with this key (e.g. "psu1.input");
	// ClearAlarm clears it. An event may do neither.
	Alarm, ClearAlarm string
}

// Alarm is an active alarm: the event that raised it.
type Alarm struct {
	Key string
	Event
}

// Options configures a Hub.
type Options struct {
	// History is how many past events Recent can return; 0 means 1000.
	History int
	// SubscriberBuffer is each subscriber's queue length; 0 means 256.
	SubscriberBuffer int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Hub collects and distributes events.
type Hub struct {
	opts Options

	mu      sync.Mutex
	nextID  uint64
	history []Event // ring, oldest first after wrap handling
	start   int
	alarms  map[string]Alarm
	subs    map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan Event
	dropped int
}

// New returns a hub.
func New(opts Options) *Hub {
	if opts.History <= 0 {
		opts.History = 1000
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = 256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Hub{opts: opts, nextID: 1, alarms: make(map[string]Alarm), subs: make(map[*subscriber]struct{})}
}

// Publish records ev, updates the alarm set and delivers ev to subscribers.
// It returns the event as recorded (with its ID and time).
func (h *Hub) Publish(ev Event) Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev.ID = h.nextID
	h.nextID++
	if ev.Time.IsZero() {
		ev.Time = h.opts.Now()
	}
	if ev.Severity == "" {
		ev.Severity = Info
	}
	if len(h.history) < h.opts.History {
		h.history = append(h.history, ev)
	} else {
		h.history[h.start] = ev
		h.start = (h.start + 1) % len(h.history)
	}
	if ev.ClearAlarm != "" {
		delete(h.alarms, ev.ClearAlarm)
	}
	if ev.Alarm != "" {
		h.alarms[ev.Alarm] = Alarm{Key: ev.Alarm, Event: ev}
	}
	for s := range h.subs {
		h.deliver(s, ev)
	}
	return ev
}

// deliver queues ev for s, dropping s's oldest queued events when it is
// full; after a drop, a notice saying how many were lost precedes ev.
func (h *Hub) deliver(s *subscriber, ev Event) {
	if s.dropped > 0 {
		n := s.dropped
		s.dropped = 0
		s.push(Event{ID: ev.ID, Time: ev.Time, Kind: "events.dropped", Severity: Warning, Source: "events",
			Message: fmt.Sprintf("%d or more events were dropped for this slow subscriber", n)})
	}
	s.push(ev)
}

// push queues ev, dropping the oldest queued event while the queue is full.
func (s *subscriber) push(ev Event) {
	for {
		select {
		case s.ch <- ev:
			return
		default:
		}
		select {
		case <-s.ch:
			s.dropped++
		default:
		}
	}
}

// Subscribe returns a channel of events published from now on, closed when
// ctx is done.
func (h *Hub) Subscribe(ctx context.Context) <-chan Event {
	s := &subscriber{ch: make(chan Event, h.opts.SubscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	out := make(chan Event)
	go func() {
		defer close(out)
		defer func() {
			h.mu.Lock()
			delete(h.subs, s)
			h.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-s.ch:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// Recent returns up to n most recent events, newest first.
func (h *Hub) Recent(n int) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	size := len(h.history)
	if n <= 0 || n > size {
		n = size
	}
	out := make([]Event, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, h.history[(h.start+size-1-i)%size])
	}
	return out
}

// Alarms returns the active alarms, most severe then oldest first.
func (h *Hub) Alarms() []Alarm {
	h.mu.Lock()
	out := make([]Alarm, 0, len(h.alarms))
	for _, a := range h.alarms {
		out = append(out, a)
	}
	h.mu.Unlock()
	rank := map[Severity]int{Critical: 0, Warning: 1, Info: 2}
	sort.Slice(out, func(i, j int) bool {
		if rank[out[i].Severity] != rank[out[j].Severity] {
			return rank[out[i].Severity] < rank[out[j].Severity]
		}
		return out[i].ID < out[j].ID
	})
	return out
}
