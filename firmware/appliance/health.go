package appliance

import (
	"fmt"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// Health is the appliance's health as the watchdog and /healthz see it.
type Health struct {
	// OK means recording is really progressing: the store completes commit
	// ticks, every component runs, no camera claims to record without frames.
	// A camera that is offline and alarmed does not make OK false: the
	// appliance is doing its job, the camera is not.
	OK bool
	// Failing lists what makes OK false.
	Failing []string
	// Warnings lists problems an operator should see that are not failures
	// of the appliance (a camera offline, a suspect slot).
	Warnings []string
}

// Health evaluates the appliance's health now.
func (a *App) Health() Health {
	rec, err := a.current()
	if err != nil {
		return Health{Failing: []string{err.Error()}}
	}
	return a.healthOf(rec, rec.store.Stats())
}

// healthOf evaluates health from stats the caller already read (the status
// and metrics paths read them once for both).
func (a *App) healthOf(rec *recording, st ringstore.Stats) Health {
	var h Health
	now := a.opts.Now()
	if len(st.SuspectSlots) > 0 {
		h.Warnings = append(h.Warnings, fmt.Sprintf("store: %d slot(s) sealed suspect after write or sync failures: %v", len(st.SuspectSlots), st.SuspectSlots))
	}
	if stall := a.commitStallAfter(); !st.LastCommit.IsZero() && now.Sub(st.LastCommit) > stall {
		h.Failing = append(h.Failing, fmt.Sprintf("store: no commit completed for %s (bound %s)", now.Sub(st.LastCommit).Round(time.Second), stall))
	}
	for _, cs := range rec.recorder.Statuses() {
		switch cs.State {
		case recorder.StateRecording:
			if !cs.LastFrame.IsZero() && now.Sub(cs.LastFrame) > a.opts.StallAfter {
				h.Failing = append(h.Failing, fmt.Sprintf("camera %s: recording but no frame for %s", cs.Name, now.Sub(cs.LastFrame).Round(time.Second)))
			}
		case recorder.StateBackoff, recorder.StateError:
			h.Warnings = append(h.Warnings, fmt.Sprintf("camera %s: %s: %s", cs.Name, cs.State, cs.LastError))
		}
	}
	for _, c := range a.components() {
		if c.State == StateBackoff {
			h.Failing = append(h.Failing, fmt.Sprintf("component %s: restarting after: %s", c.Name, c.LastError))
		}
	}
	h.OK = len(h.Failing) == 0
	return h
}

func (a *App) commitStallAfter() time.Duration {
	if a.opts.CommitStallAfter > 0 {
		return a.opts.CommitStallAfter
	}
	ci := a.opts.CommitInterval
	if ci <= 0 {
		ci = time.Second
	}
	return max(10*ci, 10*time.Second)
}

// components lists the supervised components of both scopes.
func (a *App) components() []ComponentStatus {
	var out []ComponentStatus
	if a.outer != nil {
		out = append(out, a.outer.Status()...)
	}
	a.mu.RLock()
	inner := a.innerSup
	a.mu.RUnlock()
	if inner != nil {
		out = append(out, inner.Status()...)
	}
	return out
}
