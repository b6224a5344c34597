package appliance

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/hardware"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/watchdog"
)

// hardwareComponents binds the board profile and the watchdog and returns
// the components that monitor and pet them, and a function to call after
// they have stopped (it disarms the watchdog: a clean stop is not a hang).
func (a *App) hardwareComponents() ([]Component, func(), error) {
	var comps []Component
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	wdPath := a.opts.WatchdogPath
	timeout := a.opts.WatchdogTimeout
	if a.opts.Board != nil && a.opts.Board.Watchdog != nil {
		if wdPath == "" {
			wdPath = a.opts.Board.Watchdog.Path
		}
		if timeout == 0 {
			timeout = a.opts.Board.Watchdog.Timeout
		}
	}
	watchdogReset := false
	if wo := a.opts.test.watchdog; wo != nil {
		guard, err := watchdog.New(*wo)
		if err != nil {
			return nil, nil, err
		}
		if err := guard.AddCheck("recording", a.healthCheck); err != nil {
			return nil, nil, err
		}
		a.guard = guard
		comps = append(comps, Component{Name: "watchdog", Run: guard.Run})
	} else if wdPath != "" {
		dev, err := watchdog.Open(wdPath)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open the hardware watchdog: %w", err)
		}
		boot, err := dev.Boot()
		if err != nil {
			a.log.Warn("watchdog boot status unreadable", "err", err)
		}
		watchdogReset = boot.WatchdogReset
		if a.opts.BootCountPath != "" {
			counts, err := watchdog.RecordBoot(a.opts.BootCountPath, boot)
			if err != nil {
				a.log.Warn("record boot", "err", err)
			} else {
				a.log.Info("boot recorded", "watchdog_reset", boot.WatchdogReset, "counts", string(counts.Format()))
			}
		}
		guard, err := watchdog.New(watchdog.Options{Device: dev, Timeout: timeout, Logger: a.log.With("component", "watchdog")})
		if err != nil {
			dev.CloseArmed()
			closeAll()
			return nil, nil, err
		}
		if err := guard.AddCheck("recording", a.healthCheck); err != nil {
			dev.CloseArmed()
			closeAll()
			return nil, nil, err
		}
		a.guard = guard
		comps = append(comps, Component{Name: "watchdog", Run: guard.Run})
		closers = append(closers, func() {
			if err := dev.Close(); err != nil {
				a.log.Warn("disarm the watchdog", "err", err)
			}
		})
		a.log.Info("hardware watchdog armed", "device", wdPath, "timeout", timeout, "last_reset_by_watchdog", boot.WatchdogReset)
	}
	if mo := a.opts.test.board; mo != nil {
		opts := *mo
		opts.OnEvent = a.boardEvent
		mon, err := board.NewMonitor(opts)
		if err != nil {
			return nil, nil, err
		}
		a.board = mon
		comps = append(comps, Component{Name: "board", Run: mon.Run})
	} else if a.opts.Board != nil {
		hw, err := hardware.Open(a.opts.Board, hardware.Options{})
		if err != nil && !errors.Is(err, hardware.ErrUnbound) {
			closeAll()
			return nil, nil, fmt.Errorf("bind the board profile %s: %w", a.opts.Board.Model, err)
		}
		if err != nil {
			a.log.Warn("board: some parts could not be bound; monitoring the rest", "err", err)
			a.hub.Publish(events.Event{Kind: "board.unbound", Severity: events.Warning, Source: a.opts.Board.Model, Message: err.Error()})
		}
		closers = append(closers, func() { hw.Close() })
		mo := hw.MonitorOptions()
		mo.WatchdogReset = watchdogReset
		mo.OnEvent = a.boardEvent
		mon, err := board.NewMonitor(mo)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		a.board = mon
		comps = append(comps, Component{Name: "board", Run: mon.Run})
	} else if watchdogReset {
		a.boardEvent(board.Event{Time: a.opts.Now(), Kind: board.WatchdogReset, Source: "watchdog", Detail: "the last reset was done by the hardware watchdog"})
	}
	return comps, closeAll, nil
}

// healthCheck is the watchdog's check: petting stops while it fails.
func (a *App) healthCheck(time.Time) error {
	h := a.Health()
	if h.OK {
		return nil
	}
	return errors.New(strings.Join(h.Failing, "; "))
}

// boardEvent publishes a board event; losses and faults raise an alarm that
// the matching recovery clears.
func (a *App) boardEvent(ev board.Event) {
	out := events.Event{Time: ev.Time, Kind: "board." + ev.Kind.String(), Source: ev.Source, Message: ev.String(), Severity: events.Info}
	if len(ev.Faults) > 0 {
		out.Data = map[string]string{"faults": strings.Join(ev.Faults, ",")}
	}
	key := func(family string) string { return "board." + family + "." + ev.Source }
	switch ev.Kind {
	case board.PSULost:
		out.Severity, out.Alarm = events.Critical, key("psu-present")
	case board.PSURestored:
		out.ClearAlarm = key("psu-present")
	case board.PSUFaulted:
		out.Severity, out.Alarm = events.Critical, key("psu-fault")
	case board.PSUFaultCleared:
		out.ClearAlarm = key("psu-fault")
	case board.BayRemoved:
		out.Severity, out.Alarm = events.Warning, key("bay")
	case board.BayInserted:
		out.ClearAlarm = key("bay")
	case board.RAIDDegraded, board.RAIDFailed:
		out.Severity, out.Alarm = events.Critical, key("raid")
	case board.RAIDRebuilding:
		out.Severity = events.Warning
	case board.RAIDRebuilt:
		out.ClearAlarm = key("raid")
	case board.WatchdogReset:
		out.Severity, out.Alarm = events.Warning, "board.watchdog-reset"
	case board.DriveErrors:
		// Counters only grow: a warning each time, no alarm to clear; the
		// counts stay visible per drive in show board and the API.
		out.Severity = events.Warning
	}
	a.log.Info("board event", "event", ev.String())
	a.hub.Publish(out)
}

// holdWatchdog keeps the watchdog petted for d whatever the health (a
// firmware install, a volume format); the returned func releases it.
func (a *App) holdWatchdog(reason string, d time.Duration) func() {
	if a.guard == nil {
		return func() {}
	}
	h, err := a.guard.Hold(reason, d)
	if err != nil {
		a.log.Warn("watchdog hold refused", "reason", reason, "err", err)
		return func() {}
	}
	return h.Release
}

// boardStatus is the board monitor's snapshot, if there is a board.
func (a *App) boardStatus() (board.Status, bool) {
	if a.board == nil {
		return board.Status{}, false
	}
	return a.board.Status(), true
}
