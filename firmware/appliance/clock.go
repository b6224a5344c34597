package appliance

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/firmware/timesync"
)

// timeComponent returns the NTP client, which follows the configuration's
// servers live. It corrects the clock only when the appliance owns it
// (Options.SetClock); elsewhere it measures, so the status still tells an
// operator how far the host's clock is from their servers.
func (a *App) timeComponent() (Component, error) {
	var clk timesync.Clock
	if a.opts.SetClock != nil {
		clk = systemClock{set: a.opts.SetClock, slew: a.opts.SlewClock}
	}
	s, err := timesync.New(timesync.Options{
		Servers: a.ntpServers, Port: a.opts.NTPPort, Clock: clk, Now: a.opts.Now, OnChange: a.timeChanged,
		Logger: a.log.With("component", "timesync"),
	})
	if err != nil {
		return Component{}, err
	}
	a.timesync = s
	return Component{Name: "timesync", Run: s.Run}, nil
}

// ntpServers returns the configured servers ("" on a configuration error:
// the round then reports no server).
func (a *App) ntpServers() []string {
	site, err := a.cfg.Site()
	if err != nil {
		a.log.Error("read the NTP servers", "err", err)
		return nil
	}
	return site.Time.NTPServers
}

// timeConfigChanged starts a round at once when the NTP servers changed.
func (a *App) timeConfigChanged(ch config.Change) {
	if a.timesync != nil && !slices.Equal(ch.Before.Time.NTPServers, ch.After.Time.NTPServers) {
		a.timesync.Trigger()
	}
}

// timeChanged turns the clock's state into events: an alarm while servers
// are configured and none has answered for a while (recordings may carry
// a wrong time), cleared when one answers or NTP is turned off.
func (a *App) timeChanged(st timesync.Status) {
	switch {
	case len(st.Servers) == 0:
		a.hub.Publish(events.Event{Kind: "time.ntp_off", Source: "timesync",
			Message: "no NTP server configured: the clock is set by hand", ClearAlarm: "time.unsynced"})
	case st.Synced:
		a.hub.Publish(events.Event{Kind: "time.synced", Source: "timesync",
			Message:    "clock synchronised with " + st.Server + " (offset " + st.Offset.Round(time.Millisecond).String() + ")",
			ClearAlarm: "time.unsynced"})
	default:
		msg := "clock not synchronised: no NTP server answered"
		if st.LastError != "" {
			msg += " (" + st.LastError + ")"
		}
		a.hub.Publish(events.Event{Kind: "time.unsynced", Severity: events.Warning, Source: "timesync",
			Message: msg, Alarm: "time.unsynced"})
	}
}

// TimeSync returns the NTP client's state (the console's `time show`).
func (a *App) TimeSync() (timesync.Status, bool) {
	if a.timesync == nil {
		return timesync.Status{}, false
	}
	return a.timesync.Status(), true
}

// systemClock corrects the system clock through the appliance's hooks.
type systemClock struct {
	set  func(time.Time) error
	slew func(time.Duration) error
}

func (c systemClock) Step(d time.Duration) error { return c.set(time.Now().Add(d)) }

func (c systemClock) Slew(d time.Duration) error {
	if c.slew == nil {
		return c.Step(d)
	}
	return c.slew(d)
}

// timeCollector exports the clock's state.
type timeCollector struct {
	a                                   *App
	synced, offset, delay, steps, slews *prometheus.Desc
}

func newTimeCollector(a *App) *timeCollector {
	return &timeCollector{a: a,
		synced: prometheus.NewDesc("nvr_time_synced", "1 when an NTP server answered within the last 15 minutes.", nil, nil),
		offset: prometheus.NewDesc("nvr_time_offset_seconds", "Last measured offset of the NTP server's clock from ours, before correction.", nil, nil),
		delay:  prometheus.NewDesc("nvr_time_delay_seconds", "Round-trip delay of the last NTP answer.", nil, nil),
		steps:  prometheus.NewDesc("nvr_time_steps_total", "Clock steps made from NTP.", nil, nil),
		slews:  prometheus.NewDesc("nvr_time_slews_total", "Clock slews made from NTP.", nil, nil),
	}
}

func (c *timeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.synced, c.offset, c.delay, c.steps, c.slews} {
		ch <- d
	}
}

func (c *timeCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.a.TimeSync()
	if !ok {
		return
	}
	synced := 0.0
	if st.Synced {
		synced = 1
	}
	ch <- prometheus.MustNewConstMetric(c.synced, prometheus.GaugeValue, synced)
	ch <- prometheus.MustNewConstMetric(c.offset, prometheus.GaugeValue, st.Offset.Seconds())
	ch <- prometheus.MustNewConstMetric(c.delay, prometheus.GaugeValue, st.Delay.Seconds())
	ch <- prometheus.MustNewConstMetric(c.steps, prometheus.CounterValue, float64(st.Steps))
	ch <- prometheus.MustNewConstMetric(c.slews, prometheus.CounterValue, float64(st.Slews))
}

// TimeSync gives the console the NTP client's state.
func (s *system) TimeSync() (timesync.Status, bool) { return s.a.TimeSync() }

// timeView is the clock for the API's status (nil without a configuration).
func (a *App) timeView() *api.TimeStatus {
	st, ok := a.TimeSync()
	if !ok {
		return nil
	}
	v := &api.TimeStatus{Now: a.opts.Now().UTC(), NTPServers: a.ntpServers(), Synced: st.Synced, Server: st.Server,
		Stratum: st.Stratum, Offset: api.Duration(st.Offset), LastSync: st.LastSync, LastError: st.LastError, Adjusting: st.Adjusting}
	if v.NTPServers == nil {
		v.NTPServers = []string{}
	}
	return v
}
