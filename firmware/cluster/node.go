package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

// Role is what a node does in the pair.
type Role int

// Roles.
const (
	// RoleStandby: a data node that is not the primary (also while joining).
	RoleStandby Role = iota
	// RolePrimary: records, holds the VIP, ships footage. One at a time.
	RolePrimary
	// RoleWitness: the third voter.
	RoleWitness
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleWitness:
		return "witness"
	default:
		return "standby"
	}
}

// RoleChange is delivered to Options.OnRole, in order, from one goroutine.
type RoleChange struct {
	Role Role
	// Epoch is the committed epoch this role holds under (for RolePrimary,
	// this node's own epoch: stamp it on everything it ships).
	Epoch uint64
	// Planned is set on a RoleStandby change that ends a switchover (the new
	// primary's epoch is already committed).
	Planned bool
	At      time.Time
}

// VIP claims and releases the service address. vip.Manager implements it.
type VIP interface {
	// Claim adds the address for epoch (refusing an epoch lower than one
	// already claimed) and announces it; the address answers only while
	// lease returns true.
	Claim(epoch uint64, lease func() bool) error
	// Release removes the address; it is idempotent.
	Release() error
}

// Takeover is the appliance's side of a planned switchover, on the standby.
type Takeover interface {
	// PrepareTakeover starts every camera session and returns once frames are
	// being committed; the later OnRole(RolePrimary) must then be a no-op
	// for sessions already running.
	PrepareTakeover(ctx context.Context) error
	// AbortTakeover stops what PrepareTakeover started when the switchover
	// fails before this node becomes primary.
	AbortTakeover()
}

// Options configures a Node.
type Options struct {
	// ID is this node's ID; it must be one of Peers and match the CN of its
	// pairing certificate. Required.
	ID string
	// Bind is the raft/control listen address (host:port). Default: this
	// node's Peers address.
	Bind string
	// Peers lists all three voters, this node included. Required.
	Peers []Peer
	// Dir holds raft's log, stable store and snapshots. Required.
	Dir string
	// Pairing holds the pair's keys. Required.
	Pairing *pairing.Bundle
	// Timing: zero value means the defaults (see Timing).
	Timing Timing
	// VIP is claimed on becoming primary; nil means no VIP (witness, tests).
	VIP VIP
	// OnRole is called on every role change, synchronously from the node's
	// role goroutine: start camera sessions on RolePrimary, stop them at once
	// on RoleStandby. It must not block for long. Nil ignores.
	OnRole func(RoleChange)
	// Takeover is called on this node when it is the standby of a planned
	// switchover. Nil means the switchover transfers at once.
	Takeover Takeover
	// CanLead reports whether this node may take over now (e.g. nil error
	// unless the store holds a format newer than this firmware understands).
	// A leader that cannot lead hands leadership to the other data node.
	// Nil means always.
	CanLead func() error
	// Heartbeat enables the two-path heartbeats when its Paths are set;
	// NodeID, Key and Epoch are filled in by the node.
	Heartbeat heartbeat.Options
	// HandoverWait bounds how long an old primary keeps recording after
	// handing leadership over in a switchover while it waits for the new
	// epoch to commit. Default 5 s.
	HandoverWait time.Duration
	// Logger receives role changes, refusals and raft's warnings; nil
	// discards.
	Logger *slog.Logger
}

// Node is one voter of the pair. Make it with New, run it with Run.
type Node struct {
	opts   Options
	log    *slog.Logger
	self   Peer
	timing Timing
	fsm    *fsm
	hb     *heartbeat.Service

	runCtx  context.Context
	raft    *raft.Raft
	stream  *streamLayer
	started chan struct{}

	mu          sync.Mutex
	role        Role
	myEpoch     uint64 // epoch this node holds as primary
	failing     map[string]bool
	roleWatch   chan struct{} // closed and replaced on every role change
	planned     atomic.Bool   // leadership handed over on request
	observed    atomic.Uint64 // highest epoch seen from outside the FSM
	leaseAt     atomic.Int64  // unix nanos of the start of the newest quorum-confirmed round
	transfering atomic.Bool
	runOnce     atomic.Bool
}

// New validates opts and returns a Node.
func New(opts Options) (*Node, error) {
	if opts.ID == "" || opts.Dir == "" || opts.Pairing == nil {
		return nil, errors.New("cluster: ID, Dir and Pairing are required")
	}
	if len(opts.Peers) != 3 {
		return nil, fmt.Errorf("cluster: %d peers, want 3 voters (two data nodes and a witness)", len(opts.Peers))
	}
	n := &Node{opts: opts, log: opts.Logger, fsm: newFSM(), started: make(chan struct{}),
		failing: map[string]bool{}, roleWatch: make(chan struct{})}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	witnesses, found := 0, false
	for _, p := range opts.Peers {
		if p.Witness {
			witnesses++
		}
		if p.ID == opts.ID {
			n.self, found = p, true
		}
	}
	if !found || witnesses != 1 {
		return nil, fmt.Errorf("cluster: peers must include this node (%s) and exactly one witness", opts.ID)
	}
	if opts.Pairing.NodeID != opts.ID {
		return nil, fmt.Errorf("cluster: pairing bundle is for node %q, not %q", opts.Pairing.NodeID, opts.ID)
	}
	if err := opts.Timing.Validate(); err != nil {
		return nil, err
	}
	n.timing = opts.Timing.withDefaults()
	if n.opts.Bind == "" {
		n.opts.Bind = n.self.Addr
	}
	if n.opts.HandoverWait <= 0 {
		n.opts.HandoverWait = 5 * time.Second
	}
	if n.self.Witness {
		n.role = RoleWitness
	}
	if len(opts.Heartbeat.Paths) > 0 {
		h := opts.Heartbeat
		h.NodeID, h.Key, h.Epoch = opts.ID, opts.Pairing.PairKey, n.Epoch
		if h.Logger == nil {
			h.Logger = n.log
		}
		hb, err := heartbeat.New(h)
		if err != nil {
			return nil, err
		}
		n.hb = hb
	}
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.opts.ID }

// Epoch returns the highest epoch this node knows: the newest committed
// "primary" entry it has applied, or a higher one seen via CheckEpoch.
func (n *Node) Epoch() uint64 { return max(n.fsm.State().Epoch, n.observed.Load()) }

// CheckEpoch refuses (StaleEpochError, logged) anything stamped with an
// epoch lower than the highest seen, and records a higher one. what names
// the message for the log ("mirror batch", "config change").
func (n *Node) CheckEpoch(what string, epoch uint64) error {
	if hi := n.Epoch(); epoch < hi {
		err := &StaleEpochError{What: what, Got: epoch, Highest: hi}
		n.log.Warn("cluster: refused message from an old epoch", "what", what, "epoch", epoch, "highest", hi)
		return err
	}
	for {
		cur := n.observed.Load()
		if epoch <= cur || n.observed.CompareAndSwap(cur, epoch) {
			return nil
		}
	}
}

// Role returns the node's current role and the epoch it holds it under.
func (n *Node) Role() (Role, uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.role, n.myEpoch
}

// LeaseFresh reports whether this node is primary and a quorum confirmed
// its leadership within the last LeaderLeaseTimeout (the VIP answers only
// then, so a frozen process stops answering before anyone can take over).
func (n *Node) LeaseFresh() bool {
	r, _ := n.Role()
	at := n.leaseAt.Load()
	return r == RolePrimary && at != 0 && time.Since(time.Unix(0, at)) < n.timing.LeaderLeaseTimeout
}

// Run starts raft (bootstrapping the three voters on first start), the
// transport, heartbeats and the role loop, and returns when ctx is done,
// after releasing the VIP and stopping everything it started.
func (n *Node) Run(ctx context.Context) error {
	if !n.runOnce.CompareAndSwap(false, true) {
		return errors.New("cluster: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.runCtx = ctx
	if err := os.MkdirAll(n.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("cluster: data dir: %w", err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(n.opts.Dir, "raft.db"))
	if err != nil {
		return fmt.Errorf("cluster: open raft store: %w", err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.opts.Dir, 2, raftLogger(n.log))
	if err != nil {
		return fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	n.stream, err = newStreamLayer(n.opts.Bind, n.opts.Pairing.ServerConfig(), n.opts.Pairing.ClientConfig(), n.serveControl)
	if err != nil {
		return err
	}
	defer n.stream.wait()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 3, Timeout: n.timing.HeartbeatTimeout, Logger: raftLogger(n.log),
	})
	defer trans.Close()

	notify := make(chan bool, 64)
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(n.opts.ID)
	conf.HeartbeatTimeout = n.timing.HeartbeatTimeout
	conf.ElectionTimeout = n.timing.ElectionTimeout
	conf.LeaderLeaseTimeout = n.timing.LeaderLeaseTimeout
	conf.CommitTimeout = n.timing.CommitTimeout
	conf.NotifyCh = notify
	conf.Logger = raftLogger(n.log)
	conf.SnapshotThreshold = 1024
	conf.TrailingLogs = 1024

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: inspect raft state: %w", err)
	}
	r, err := raft.NewRaft(conf, n.fsm, store, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	defer func() {
		if err := r.Shutdown().Error(); err != nil {
			n.log.Warn("cluster: raft shutdown", "err", err)
		}
	}()
	if !existing {
		var cfg raft.Configuration
		for _, p := range n.opts.Peers {
			cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
		if err := r.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	obs := make(chan raft.Observation, 64)
	observer := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(observer)
	defer r.DeregisterObserver(observer)

	var wg sync.WaitGroup
	if n.hb != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.hb.Run(ctx); err != nil {
				n.log.Error("cluster: heartbeats stopped", "err", err)
			}
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); n.observe(ctx, obs) }()
	go func() { defer wg.Done(); n.leaseLoop(ctx) }()
	close(n.started)
	n.log.Info("cluster: node started", "id", n.opts.ID, "bind", n.stream.Addr().String(), "witness", n.self.Witness,
		"heartbeat_timeout", n.timing.HeartbeatTimeout, "lease", n.timing.LeaderLeaseTimeout)
	if n.self.Witness {
		n.emit(RoleChange{Role: RoleWitness, At: time.Now()})
	}
	n.roleLoop(ctx, notify)
	cancel()
	wg.Wait()
	return nil
}

// observe tracks which voters the leader fails to reach (transfer targets).
func (n *Node) observe(ctx context.Context, obs <-chan raft.Observation) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-obs:
			n.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				n.failing[string(d.PeerID)] = true
			case raft.ResumedHeartbeatObservation:
				delete(n.failing, string(d.PeerID))
			}
			n.mu.Unlock()
		}
	}
}

// leaseLoop confirms leadership with a quorum every HeartbeatTimeout/6 while
// primary; LeaseFresh reads the result.
func (n *Node) leaseLoop(ctx context.Context) {
	t := time.NewTicker(n.timing.HeartbeatTimeout / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r, _ := n.Role(); r != RolePrimary {
			continue
		}
		start := time.Now()
		if err := n.raft.VerifyLeader().Error(); err == nil {
			n.leaseAt.Store(start.UnixNano())
		}
	}
}

// WaitStarted returns once Run has started raft, or ctx is done.
func (n *Node) WaitStarted(ctx context.Context) error {
	select {
	case <-n.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
