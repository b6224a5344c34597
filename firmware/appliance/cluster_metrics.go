package appliance

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nvrfw/nvr/firmware/cluster"
)

// clusterCollector exposes the pair's state, read at scrape time from the
// node and the mirror.
type clusterCollector struct {
	a *App

	role, epoch, lease, takeovers              *prometheus.Desc
	lagSeconds, lagBytes, connected, refused   *prometheus.Desc
	pathUp, pathRTT, pathLoss, versionMismatch *prometheus.Desc
}

func newClusterCollector(a *App) *clusterCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &clusterCollector{
		a:               a,
		role:            d("nvr_cluster_role", "1 for this node's role in the pair (primary, standby).", "role"),
		epoch:           d("nvr_cluster_epoch", "Highest epoch this node knows."),
		lease:           d("nvr_cluster_lease_fresh", "1 while this node is primary under a fresh quorum lease (the VIP answers)."),
		takeovers:       d("nvr_cluster_takeovers_total", "Times this node became the primary since nvrd started."),
		lagSeconds:      d("nvr_mirror_lag_seconds", "Newest committed frame on the primary minus the newest the standby acknowledged."),
		lagBytes:        d("nvr_mirror_lag_bytes", "Primary's log bytes not yet acknowledged by the standby (sender side)."),
		connected:       d("nvr_mirror_connected", "1 while the mirror link is up.", "side"),
		refused:         d("nvr_mirror_refused_total", "Mirror connections or messages refused by this node's receiver."),
		pathUp:          d("nvr_cluster_heartbeat_up", "1 while heartbeats arrive on the path.", "path"),
		pathRTT:         d("nvr_cluster_heartbeat_rtt_seconds", "Smoothed heartbeat round-trip time on the path.", "path"),
		pathLoss:        d("nvr_cluster_heartbeat_loss_ratio", "Fraction of the peer's recent heartbeats lost on the path.", "path"),
		versionMismatch: d("nvr_cluster_version_mismatch", "1 while the peer runs another firmware or protocol version."),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	v, err := c.a.clusterView()
	if err != nil {
		return
	}
	for _, r := range []cluster.Role{cluster.RolePrimary, cluster.RoleStandby} {
		g(c.role, b(v.Role == r.String()), r.String())
	}
	g(c.epoch, float64(v.Epoch))
	g(c.lease, b(v.LeaseFresh))
	ch <- prometheus.MustNewConstMetric(c.takeovers, prometheus.CounterValue, float64(v.Takeovers))
	g(c.lagSeconds, v.Mirror.LagSeconds)
	g(c.lagBytes, float64(v.Mirror.LagBytes))
	if v.MirrorAs != "" {
		g(c.connected, b(v.Mirror.Connected), v.MirrorAs)
	}
	if v.MirrorAs == "receiver" {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(v.Mirror.Refused))
	}
	if h := v.Heartbeat; h != nil {
		for _, p := range h.Paths {
			g(c.pathUp, b(p.Up), p.Name)
			g(c.pathRTT, p.RTT.Seconds(), p.Name)
			g(c.pathLoss, p.Loss, p.Name)
		}
		g(c.versionMismatch, b(h.VersionMismatch))
	}
}
