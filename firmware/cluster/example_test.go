package cluster_test

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/cluster/vip"
)

// sessions stands for the appliance's camera sessions.
type sessions struct{}

func (sessions) StartAll(epoch uint64)                     {}
func (sessions) StopAll()                                  {}
func (sessions) PrepareTakeover(ctx context.Context) error { return nil } // start all, wait for committed frames
func (sessions) AbortTakeover()                            {}

// Example shows how nvrd run wires a data node: the VIP manager, the role
// callback that starts and stops camera sessions, the switchover hook and
// the two heartbeat paths.
func Example() {
	ctx := context.Background()
	log := slog.Default()
	bundle, err := pairing.Load("/config")
	if err != nil {
		return
	}
	peers, _ := cluster.ParsePeers("primary=10.0.0.1:7100,standby=10.0.0.2:7100,witness=10.0.0.3:7100/witness")
	v, _ := vip.New(vip.Options{Link: "lan0", Addr: netip.MustParseAddr("10.0.0.100")}, nil)
	go func() { _ = v.Run(ctx) }()
	s := sessions{}
	node, err := cluster.New(cluster.Options{
		ID: "primary", Peers: peers, Dir: "/data/raft", Pairing: bundle, VIP: v, Takeover: s, Logger: log,
		OnRole: func(c cluster.RoleChange) {
			if c.Role == cluster.RolePrimary {
				s.StartAll(c.Epoch) // stamp c.Epoch on every mirror message
			} else {
				s.StopAll()
			}
		},
		Heartbeat: heartbeat.Options{FirmwareVersion: "1.2.0", Paths: []heartbeat.Path{
			{Name: "dedicated", Local: "192.168.255.1:7200", Peer: "192.168.255.2:7200"},
			{Name: "lan", Local: "10.0.0.1:7201", Peer: "10.0.0.2:7201"},
		}},
	})
	if err != nil {
		return
	}
	go func() { _ = node.Run(ctx) }()
	// Console / API: node.Status(), node.Switchover(ctx).
	// Mirror receiver: node.CheckEpoch("mirror batch", msg.Epoch).
}
