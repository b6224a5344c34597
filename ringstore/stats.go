package ringstore

import (
	"sort"
	"sync"
	"time"
)

// Stats is a snapshot of the store's health and capacity.
type Stats struct {
	// Capacity is the bytes of all slots; Used the bytes of indexed records.
	Capacity, Used int64
	// Slots counts the slots; FreeSlots those holding nothing.
	Slots, FreeSlots int
	// SlotSize is the size of one slot.
	SlotSize int64
	// SuspectSlots lists slots sealed after a write or sync failure.
	SuspectSlots []int
	// Streams is the retention actually held, per stream, by name.
	Streams []StreamInfo
	// WriteRate is the committed payload rate over the last minute, bytes/s.
	WriteRate float64
	// CommitLatency is the last commit's time from tick to acknowledgement;
	// CommitLatencyP99 the 99th percentile of the last 1024 commits.
	CommitLatency, CommitLatencyP99 time.Duration
	// LastCommit is when the writer last completed a commit tick (with or
	// without records): it stops moving when the writer is stuck (a hung
	// fdatasync) or has failed, which is what the appliance's health and
	// watchdog check.
	LastCommit time.Time
	// Commits counts the commits that wrote records.
	Commits uint64
	// Durable is the durable watermark (see Store.Durable).
	Durable uint64
	// Alarms are the most recent alarms (at most 16), oldest first;
	// AlarmCount counts all since Open.
	Alarms     []Alarm
	AlarmCount uint64
}

// Healthy reports whether no slot is suspect and no alarm was raised.
func (st Stats) Healthy() bool { return len(st.SuspectSlots) == 0 && st.AlarmCount == 0 }

// StreamInfo summarises one stream's retained footage.
type StreamInfo struct {
	Name string
	// Tracks is the stream's current track table.
	Tracks []Track
	// First and Last bound the footage held (zero when none).
	First, Last time.Time
	// Bytes is the size of its records.
	Bytes int64
}

type commitSample struct {
	at    time.Time
	bytes int64
}

// statsState accumulates the writer's figures.
type statsState struct {
	mu         sync.Mutex
	lat        [1024]time.Duration
	nlat       int
	commits    uint64
	lastTick   time.Time
	samples    []commitSample
	alarms     []Alarm
	alarmCount uint64
}

func (st *statsState) commitDone(d time.Duration, bytes int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lat[st.commits%uint64(len(st.lat))] = d
	st.commits++
	st.nlat = min(st.nlat+1, len(st.lat))
	now := time.Now()
	st.samples = append(st.samples, commitSample{now, bytes})
	for len(st.samples) > 1 && now.Sub(st.samples[0].at) > time.Minute {
		st.samples = st.samples[1:]
	}
}

func (st *statsState) tickDone(at time.Time) {
	st.mu.Lock()
	st.lastTick = at
	st.mu.Unlock()
}

func (st *statsState) addAlarm(a Alarm) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.alarmCount++
	st.alarms = append(st.alarms, a)
	if len(st.alarms) > 16 {
		st.alarms = st.alarms[len(st.alarms)-16:]
	}
}

// Stats returns a snapshot of capacity, retention, rates and faults.
func (s *Store) Stats() Stats {
	out := Stats{Slots: s.vol.Slots, SlotSize: s.vol.SlotSize, Capacity: int64(s.vol.Slots) * s.vol.SlotSize}
	s.slotMu.RLock()
	for i, h := range s.slots {
		out.Used += h.end
		if h.end == 0 && h.state != slotHead {
			out.FreeSlots++
		}
		if h.state == slotSuspect {
			out.SuspectSlots = append(out.SuspectSlots, i)
		}
	}
	s.slotMu.RUnlock()
	out.Streams, _ = s.Streams()
	out.Durable = s.Durable()
	st := &s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.figures(&out)
	out.Alarms = append([]Alarm(nil), st.alarms...)
	out.AlarmCount = st.alarmCount
	return out
}

// figures fills the commit figures of out; the caller holds st.mu.
func (st *statsState) figures(out *Stats) {
	out.Commits = st.commits
	out.LastCommit = st.lastTick
	if st.commits > 0 {
		out.CommitLatency = st.lat[(st.commits-1)%uint64(len(st.lat))]
		l := append([]time.Duration(nil), st.lat[:st.nlat]...)
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		out.CommitLatencyP99 = l[(len(l)*99)/100]
	}
	if n := len(st.samples); n > 1 {
		var b int64
		for _, x := range st.samples[1:] {
			b += x.bytes
		}
		if d := st.samples[n-1].at.Sub(st.samples[0].at); d > 0 {
			out.WriteRate = float64(b) / d.Seconds()
		}
	}
}

// runtimeStats returns the commit figures persisted for Inspect.
func (s *Store) runtimeStats() []byte {
	st := &s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	var out Stats
	st.figures(&out)
	return encodeRuntimeStats(out)
}
