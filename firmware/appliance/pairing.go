package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/events"
)

var _ console.PairingSystem = (*system)(nil)

// ClusterDirName is the directory, beside the configuration database, that
// holds the pairing bundle saved on the console and, for a pair started from
// the configuration, raft's and the mirror's state.
const ClusterDirName = "cluster"

// alarmClusterNotStarted is raised when the configuration enables the pair
// but it cannot start; the appliance then records alone.
const alarmClusterNotStarted = "cluster.not_started"

// ClusterDir returns the pair's directory for the configuration database at
// configPath: its directory + "/cluster".
func ClusterDir(configPath string) string {
	return filepath.Join(filepath.Dir(configPath), ClusterDirName)
}

// errNoConfigDir: the appliance runs without a configuration database, so
// it has nowhere to keep a pairing bundle.
var errNoConfigDir = errors.New("no configuration database, so nowhere to keep a pairing bundle")

// SavePairing implements console.PairingSystem: b goes to the cluster
// directory beside the configuration database (crash-safe, mode 0600).
func (s *system) SavePairing(b *pairing.Bundle) error {
	if s.a.opts.ConfigPath == "" {
		return errNoConfigDir
	}
	dir := ClusterDir(s.a.opts.ConfigPath)
	if old, err := pairing.Load(dir); err == nil && !bytes.Equal(old.CACert.Raw, b.CACert.Raw) {
		// A new pair: the old pair's raft log and mirror positions mean
		// nothing to it (and would name members it no longer has). They
		// are kept aside, not deleted, until the operator clears them.
		if err := retirePairState(dir, s.a.opts.Now()); err != nil {
			return err
		}
	}
	if err := b.Save(dir); err != nil {
		return fmt.Errorf("save the pairing bundle in %s: %w", dir, err)
	}
	s.a.hub.Publish(events.Event{Kind: "cluster.paired", Source: "console",
		Message: "pairing bundle of node " + b.NodeID + " saved; takes effect after a restart"})
	return nil
}

// Pairing implements console.PairingSystem.
func (s *system) Pairing() (*pairing.Bundle, error) {
	if s.a.opts.ConfigPath == "" {
		return nil, errNoConfigDir
	}
	return pairing.Load(ClusterDir(s.a.opts.ConfigPath))
}

// ClusterFromConfig turns the configuration's pair settings into cluster
// options: ID, voters, heartbeat paths, VIP and mirror address from c, the
// bundle and raft's and the mirror's state in dir. It fails when c is not
// enabled or invalid, or the bundle is missing, unreadable or for another
// node.
func ClusterFromConfig(c config.Cluster, dir string) (*ClusterOptions, error) {
	if !c.Enabled {
		return nil, errors.New("the pair is disabled in the configuration")
	}
	if err := config.ValidateCluster(c); err != nil {
		return nil, fmt.Errorf("cluster settings: %w", err)
	}
	b, err := pairing.Load(dir)
	if errors.Is(err, pairing.ErrNoBundle) {
		return nil, fmt.Errorf("no pairing bundle in %s (console: cluster pair, or cluster import): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pairing bundle in %s: %w", dir, err)
	}
	if b.NodeID != c.NodeID {
		return nil, fmt.Errorf("the pairing bundle in %s is node %q's, the configuration names this node %q", dir, b.NodeID, c.NodeID)
	}
	o := &ClusterOptions{ID: c.NodeID, Dir: dir, Pairing: b, VIPLink: c.VIPInterface, MirrorBind: c.MirrorBind}
	for _, m := range c.Members {
		o.Peers = append(o.Peers, cluster.Peer{ID: m.ID, Addr: m.Addr, Witness: m.Witness})
	}
	for _, h := range c.Heartbeats {
		o.Heartbeat = append(o.Heartbeat, heartbeat.Path{Name: h.Name, Local: h.Local, Peer: h.Peer})
	}
	if c.VIP != "" {
		if o.VIP, err = netip.ParseAddr(c.VIP); err != nil {
			return nil, fmt.Errorf("cluster settings: vip: %w", err)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// clusterFromConfig makes the appliance a node of the pair its
// configuration enables, when no cluster options were given (flags win).
// When the pair cannot start, it logs why, raises an alarm and leaves the
// appliance recording alone: a half-done pairing must never lock an
// integrator out of the box.
func (a *App) clusterFromConfig() {
	if a.opts.Cluster != nil || a.cfg == nil {
		return
	}
	site, err := a.cfg.Site()
	if err != nil {
		a.clusterNotStarted(fmt.Errorf("read the configuration: %w", err))
		return
	}
	if !site.Cluster.Enabled {
		return
	}
	o, err := ClusterFromConfig(site.Cluster, ClusterDir(a.opts.ConfigPath))
	if err != nil {
		a.clusterNotStarted(err)
		return
	}
	a.log.Info("joining the pair from the configuration", "node", o.ID, "dir", o.Dir)
	a.opts.Cluster = o
}

func (a *App) clusterNotStarted(err error) {
	msg := "the pair is enabled but cannot start, recording alone: " + err.Error()
	a.log.Error("the pair is enabled but cannot start; recording alone", "err", err)
	a.hub.Publish(events.Event{Kind: alarmClusterNotStarted, Source: "cluster", Severity: events.Critical,
		Message: msg, Alarm: alarmClusterNotStarted})
}

// pairStateNames are the old pair's state under the cluster directory.
var pairStateNames = []string{"raft", "mirror-state.json"}

// retirePairState moves the previous pair's raft and mirror state in dir
// aside (NAME.replaced-TIME) before a bundle of another pair is saved.
func retirePairState(dir string, now time.Time) error {
	stamp := now.UTC().Format("20060102T150405Z")
	for _, name := range pairStateNames {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.Rename(p, p+".replaced-"+stamp); err != nil {
			return fmt.Errorf("keep the previous pair's %s aside: %w", name, err)
		}
	}
	return nil
}
