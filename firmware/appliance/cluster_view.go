package appliance

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/console"
)

var (
	_ api.ClusterBackend    = (*backend)(nil)
	_ console.ClusterSystem = (*system)(nil)
)

// errNotInPair answers the pair's commands on an appliance running alone.
var errNotInPair = fmt.Errorf("not in a cluster (no pair configured on this appliance, or it did not start: see its alarms): %w", api.ErrNotFound)

func (a *App) pairView() (ClusterView, error) {
	if !a.inCluster() {
		return ClusterView{}, errNotInPair
	}
	return a.clusterView()
}

func (a *App) pairSwitchover(ctx context.Context) error {
	if !a.inCluster() {
		return errNotInPair
	}
	v, err := a.clusterView()
	if err != nil {
		return err
	}
	if v.Heartbeat == nil || v.Heartbeat.PeerID == "" {
		return fmt.Errorf("switchover: no peer heard from yet: %w", api.ErrConflict)
	}
	a.log.Warn("switchover requested", "role", v.Role, "epoch", v.Epoch)
	if err := a.switchover(ctx); err != nil {
		return err
	}
	// Asked on the primary, the swap is done when the standby is primary;
	// this node learns the new epoch a moment later: wait for it (bounded),
	// so the caller's next view shows the new roles.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if nv, err := a.clusterView(); err == nil && nv.Epoch > v.Epoch && nv.Primary != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Cluster implements api.ClusterBackend.
func (b *backend) Cluster(context.Context) (api.ClusterStatus, error) {
	v, err := b.a.pairView()
	if err != nil {
		return api.ClusterStatus{}, err
	}
	return apiCluster(v), nil
}

// Switchover implements api.ClusterBackend.
func (b *backend) Switchover(ctx context.Context) error { return b.a.pairSwitchover(ctx) }

func apiCluster(v ClusterView) api.ClusterStatus {
	out := api.ClusterStatus{Node: v.ID, Role: v.Role, Epoch: v.Epoch, Primary: v.Primary, Leader: v.Leader, LeaseFresh: v.LeaseFresh, ConfigHash: v.ConfigHash,
		Firmware: v.Firmware, Takeovers: v.Takeovers, Members: []api.ClusterMember{}, Links: []api.ClusterLink{},
		Mirror: api.MirrorStatus{Side: v.MirrorAs, Connected: v.Mirror.Connected, Peer: v.Mirror.Peer, LagSeconds: v.Mirror.LagSeconds,
			LagBytes: v.Mirror.LagBytes, AckedNewest: v.Mirror.AckedNewest, Batches: v.Mirror.Batches, Bytes: v.Mirror.Bytes,
			Refused: v.Mirror.Refused, Reconnects: v.Mirror.Reconnects, LastError: v.Mirror.LastError}}
	for _, m := range v.Members {
		out.Members = append(out.Members, api.ClusterMember{ID: m.ID, Addr: m.Addr, Witness: m.Witness, Reachable: m.Reachable})
	}
	if h := v.Heartbeat; h != nil {
		out.Mirror.Path = h.Preferred
		out.PeerFirmware, out.VersionMismatch, out.ConfigMismatch = h.PeerFirmware, h.VersionMismatch, h.ConfigMismatch
		for _, p := range h.Paths {
			out.Links = append(out.Links, api.ClusterLink{Name: p.Name, Up: p.Up, RTT: api.Duration(p.RTT), Loss: p.Loss, Received: p.Received, Refused: p.Refused})
		}
	}
	return out
}

// Cluster implements console.ClusterSystem.
func (s *system) Cluster(context.Context) (console.ClusterReport, error) {
	v, err := s.a.pairView()
	if err != nil {
		return console.ClusterReport{}, err
	}
	var b strings.Builder
	if err := v.Status.WriteText(&b); err != nil {
		return console.ClusterReport{}, err
	}
	fmt.Fprintf(&b, "  firmware %s; became primary %d time(s) since start\n", v.Firmware, v.Takeovers)
	m := v.Mirror
	switch {
	case v.MirrorAs == "":
		b.WriteString("  mirror: not running\n")
	case v.Role == cluster.RolePrimary.String():
		fmt.Fprintf(&b, "  mirror: shipping to %s connected=%v lag %.1f s / %d bytes, %d batches, %d reconnects\n",
			orDash(m.Peer), m.Connected, m.LagSeconds, m.LagBytes, m.Batches, m.Reconnects)
	default:
		fmt.Fprintf(&b, "  mirror: receiving from %s connected=%v lag %.1f s, %d batches, %d refused\n",
			orDash(m.Peer), m.Connected, m.LagSeconds, m.Batches, m.Refused)
	}
	if m.LastError != "" {
		fmt.Fprintf(&b, "  mirror last error: %s\n", m.LastError)
	}
	return console.ClusterReport{Text: b.String(), Data: apiCluster(v)}, nil
}

// Switchover implements console.ClusterSystem.
func (s *system) Switchover(ctx context.Context) error { return s.a.pairSwitchover(ctx) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
