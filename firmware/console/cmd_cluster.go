package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// ClusterSystem is what a System that is a data node of an appliance pair
// adds for "show cluster" and "cluster switchover". The console type-asserts
// its System to it; without it those commands say "not in a cluster".
type ClusterSystem interface {
	// Cluster returns the pair's state as this node sees it.
	Cluster(ctx context.Context) (ClusterReport, error)
	// Switchover performs a planned make-before-break role swap and returns
	// once the standby is the primary.
	Switchover(ctx context.Context) error
}

// ClusterReport is the pair's state: Text as "show cluster" prints it, and
// Data, the same state, for --json.
type ClusterReport struct {
	Text string
	Data any
}

// errNotInCluster: the System is not a node of a pair.
var errNotInCluster = errors.New("not in a cluster (nvrd run without --cluster-dir)")

// clusterShowCommand is "show cluster".
func clusterShowCommand() *command {
	return &command{name: "cluster", args: "[--json]", summary: "the appliance pair: roles, epoch, links, mirror lag, versions",
		role: config.RoleViewer, json: true, run: runShowCluster}
}

// clusterCommand is the "cluster" group.
func clusterCommand() *command {
	return &command{name: "cluster", summary: "the appliance pair", subs: []*command{
		{name: "switchover", summary: "planned role swap: the standby records before the primary stops (asks to confirm)",
			help: "The standby starts every camera session and commits frames, then takes leadership; the\nold primary stops recording only after the new epoch is committed. No frame is lost.",
			role: config.RoleAdmin, run: runClusterSwitchover},
	}}
}

func (s *session) clusterSystem() (ClusterSystem, error) {
	cs, ok := s.c.opts.System.(ClusterSystem)
	if !ok {
		return nil, errNotInCluster
	}
	return cs, nil
}

func runShowCluster(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	cs, err := s.clusterSystem()
	if err != nil {
		return err
	}
	r, err := cs.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if a.has("json") {
		return s.printJSON(r.Data)
	}
	s.c.printf("%s", r.Text)
	return nil
}

func runClusterSwitchover(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	cs, err := s.clusterSystem()
	if err != nil {
		return err
	}
	s.c.printf("Swap the roles of the pair? The standby starts recording before this primary stops.\n")
	if err := s.confirm(ctx, `Type "switchover" to confirm: `, "switchover"); err != nil {
		return err
	}
	s.c.log.Warn("switchover from the console", "user", s.user.Name)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cs.Switchover(ctx); err != nil {
		return fmt.Errorf("switchover: %w", err)
	}
	s.c.printf("switchover done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
