package appliance

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nvrfw/nvr/board/mdraid"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// collector exposes the appliance's state to Prometheus, read at scrape time
// from the store, the recorder, the event hub and the supervisor (the
// components themselves keep no metrics registry).
type collector struct {
	a *App

	capacity, used, writeRate, commitLast, commitP99, commits, durable, suspect, alarmsTotal *prometheus.Desc
	retention, streamBytes                                                                   *prometheus.Desc
	camUp, camFrames, camDropped, camReconnects, camBitrate, camFPS, camLastFrame            *prometheus.Desc
	alarms, compRestarts, healthy                                                            *prometheus.Desc
	psuPresent, psuFault, psuWatts, bayPresent, raidHealthy, raidProgress, watchdogPets      *prometheus.Desc
}

func newCollector(a *App) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		a:             a,
		capacity:      d("nvr_store_capacity_bytes", "Bytes of all slots of the recording volume."),
		used:          d("nvr_store_used_bytes", "Bytes of indexed footage."),
		writeRate:     d("nvr_store_write_bytes_per_second", "Committed payload rate over the last minute."),
		commitLast:    d("nvr_store_commit_latency_seconds", "Last commit's time from tick to acknowledgement."),
		commitP99:     d("nvr_store_commit_latency_p99_seconds", "99th percentile commit latency over the last 1024 commits."),
		commits:       d("nvr_store_commits_total", "Commits that wrote records."),
		durable:       d("nvr_store_durable_seq", "Durable watermark (append sequence number)."),
		suspect:       d("nvr_store_suspect_slots", "Slots sealed after a write or sync failure."),
		alarmsTotal:   d("nvr_store_alarms_total", "Store faults detected since open."),
		retention:     d("nvr_store_retention_seconds", "Footage held per stream (newest minus oldest).", "camera"),
		streamBytes:   d("nvr_store_stream_bytes", "Bytes of footage held per stream.", "camera"),
		camUp:         d("nvr_camera_recording", "1 when the camera's session is recording.", "camera", "state"),
		camFrames:     d("nvr_camera_frames_recorded_total", "Frames the store took.", "camera"),
		camDropped:    d("nvr_camera_frames_dropped_total", "Frames not recorded after recording started.", "camera"),
		camReconnects: d("nvr_camera_reconnects_total", "Connection attempts after the first.", "camera"),
		camBitrate:    d("nvr_camera_bitrate_bps", "Recorded bits per second.", "camera"),
		camFPS:        d("nvr_camera_fps", "Recorded video frames per second.", "camera"),
		camLastFrame:  d("nvr_camera_last_frame_timestamp_seconds", "Wall time of the last recorded frame.", "camera"),
		alarms:        d("nvr_alarms_active", "Active alarms by severity.", "severity"),
		compRestarts:  d("nvr_component_restarts_total", "Restarts of a supervised component.", "component"),
		healthy:       d("nvr_healthy", "1 when recording is healthy (what the watchdog and /healthz use)."),
		psuPresent:    d("nvr_psu_present", "1 when the power supply answers on its bus.", "psu"),
		psuFault:      d("nvr_psu_faulted", "1 while the power supply reports a fault.", "psu"),
		psuWatts:      d("nvr_psu_output_watts", "Power supply output power (READ_POUT).", "psu"),
		bayPresent:    d("nvr_bay_drive_present", "1 when a drive is in the bay.", "bay"),
		raidHealthy:   d("nvr_raid_healthy", "1 when the md array is whole (not degraded, failed or rebuilding).", "array"),
		raidProgress:  d("nvr_raid_sync_progress", "Progress 0..1 of a running resync or rebuild; -1 when none.", "array"),
		watchdogPets:  d("nvr_watchdog_pets_total", "Successful hardware watchdog keepalives."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cnt := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	bySev := map[string]float64{"info": 0, "warning": 0, "critical": 0}
	for _, al := range c.a.hub.Alarms() {
		bySev[string(al.Severity)]++
	}
	for sev, n := range bySev {
		g(c.alarms, n, sev)
	}
	for _, s := range c.a.components() {
		cnt(c.compRestarts, float64(s.Restarts), s.Name)
	}
	c.collectHardware(g, cnt)
	rec, err := c.a.current()
	if err != nil {
		g(c.healthy, 0) // recording is (re)starting
		return
	}
	st := rec.store.Stats()
	h := 0.0
	if c.a.healthOf(rec, st).OK {
		h = 1
	}
	g(c.healthy, h)
	g(c.capacity, float64(st.Capacity))
	g(c.used, float64(st.Used))
	g(c.writeRate, st.WriteRate)
	g(c.commitLast, st.CommitLatency.Seconds())
	g(c.commitP99, st.CommitLatencyP99.Seconds())
	cnt(c.commits, float64(st.Commits))
	g(c.durable, float64(st.Durable))
	g(c.suspect, float64(len(st.SuspectSlots)))
	cnt(c.alarmsTotal, float64(st.AlarmCount))
	for _, s := range st.Streams {
		if _, _, backfill := ringstore.SplitBackfillName(s.Name); backfill {
			continue // merged into its camera's footage on reads
		}
		if !s.First.IsZero() {
			g(c.retention, s.Last.Sub(s.First).Seconds(), s.Name)
		}
		g(c.streamBytes, float64(s.Bytes), s.Name)
	}
	for _, cs := range rec.recorder.Statuses() {
		up := 0.0
		if cs.State == recorder.StateRecording {
			up = 1
		}
		g(c.camUp, up, cs.Name, cs.State.String())
		cnt(c.camFrames, float64(cs.FramesRecorded), cs.Name)
		cnt(c.camDropped, float64(cs.FramesDropped), cs.Name)
		cnt(c.camReconnects, float64(cs.Reconnects), cs.Name)
		g(c.camBitrate, cs.Bitrate, cs.Name)
		g(c.camFPS, cs.FPS, cs.Name)
		if !cs.LastFrame.IsZero() {
			g(c.camLastFrame, float64(cs.LastFrame.UnixNano())/1e9, cs.Name)
		}
	}
}

func (c *collector) collectHardware(g, cnt func(*prometheus.Desc, float64, ...string)) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	if c.a.guard != nil {
		cnt(c.watchdogPets, float64(c.a.guard.Status().Pets))
	}
	bs, ok := c.a.boardStatus()
	if !ok {
		return
	}
	for _, p := range bs.PSUs {
		g(c.psuPresent, b(p.Present), p.Name)
		g(c.psuFault, b(len(p.Faults) > 0), p.Name)
		g(c.psuWatts, p.Reading.POut, p.Name)
	}
	for _, bay := range bs.Bays {
		g(c.bayPresent, b(bay.Present), bay.Name)
	}
	for _, ar := range bs.Arrays {
		g(c.raidHealthy, b(ar.Known && ar.Health == mdraid.Clean), ar.Name)
		g(c.raidProgress, ar.Progress, ar.Name)
	}
}
