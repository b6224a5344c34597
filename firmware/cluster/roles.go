package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// roleLoop owns the role: it follows raft leadership, commits the epoch,
// claims and releases the VIP and tells the appliance. It returns when ctx
// is done, after releasing the VIP.
func (n *Node) roleLoop(ctx context.Context, notify <-chan bool) {
	tick := time.NewTicker(n.timing.HeartbeatTimeout / 4)
	defer tick.Stop()
	var (
		leader      bool
		handoverEnd time.Time // non-zero: old primary waiting for the new epoch
		transfers   sync.WaitGroup
	)
	defer transfers.Wait()
	for {
		select {
		case <-ctx.Done():
			if r, e := n.Role(); r == RolePrimary || !handoverEnd.IsZero() {
				n.releaseVIP()
				n.setRole(RoleChange{Role: RoleStandby, Epoch: e, At: time.Now()})
			}
			return
		case leader = <-notify:
			if leader {
				n.log.Info("cluster: won raft leadership", "term", n.raft.Stats()["term"])
				n.lead(ctx, &transfers)
				continue
			}
			r, e := n.Role()
			if r != RolePrimary {
				continue
			}
			// Drop the VIP at once, whatever the reason.
			n.releaseVIP()
			if n.planned.Swap(false) {
				n.log.Info("cluster: handed leadership over; recording until the new epoch commits", "epoch", e)
				handoverEnd = time.Now().Add(n.opts.HandoverWait)
				continue
			}
			n.log.Warn("cluster: lost leadership; stopped being primary", "epoch", e)
			n.setRole(RoleChange{Role: RoleStandby, Epoch: e, At: time.Now()})
		case <-n.fsm.changed:
			st := n.fsm.State()
			if !handoverEnd.IsZero() {
				if _, e := n.Role(); st.Epoch > e {
					n.log.Info("cluster: new epoch committed; stopping as primary", "new_epoch", st.Epoch, "new_primary", st.Primary)
					n.setRole(RoleChange{Role: RoleStandby, Epoch: st.Epoch, Planned: true, At: time.Now()})
					handoverEnd = time.Time{}
				}
			}
		case <-tick.C:
			if !handoverEnd.IsZero() && time.Now().After(handoverEnd) {
				n.log.Warn("cluster: new epoch not seen after handover; stopping as primary anyway")
				n.setRole(RoleChange{Role: RoleStandby, Epoch: n.Epoch(), At: time.Now()})
				handoverEnd = time.Time{}
			}
			if leader && n.raft.State() == raft.Leader {
				if r, _ := n.Role(); r != RolePrimary {
					n.lead(ctx, &transfers)
				}
			}
		}
	}
}

// lead runs when this node is raft leader but not yet primary: a data node
// that may lead commits its epoch and becomes primary; any other leader
// hands leadership to a data node.
func (n *Node) lead(ctx context.Context, transfers *sync.WaitGroup) {
	if err := n.mayLead(); err != nil {
		if n.transfering.CompareAndSwap(false, true) {
			n.log.Warn("cluster: leader may not record; handing leadership to a data node", "reason", err)
			transfers.Add(1)
			go func() {
				defer transfers.Done()
				defer n.transfering.Store(false)
				n.transferAway(ctx)
			}()
		}
		return
	}
	start := time.Now()
	data, _ := json.Marshal(command{Op: "primary", ID: n.opts.ID})
	f := n.raft.Apply(data, n.timing.ElectionTimeout)
	if err := f.Error(); err != nil {
		n.log.Warn("cluster: could not commit the epoch; not taking over", "err", err)
		return
	}
	epoch, ok := f.Response().(uint64)
	if !ok || n.raft.State() != raft.Leader {
		return
	}
	// The commit proved a quorum answered after start.
	n.leaseAt.Store(start.UnixNano())
	n.mu.Lock()
	n.myEpoch = epoch
	n.mu.Unlock()
	if n.opts.VIP != nil {
		if err := n.opts.VIP.Claim(epoch, n.LeaseFresh); err != nil {
			n.log.Error("cluster: VIP claim failed", "epoch", epoch, "err", err)
		}
	}
	n.log.Info("cluster: primary", "epoch", epoch, "commit", time.Since(start).Round(time.Millisecond))
	n.setRole(RoleChange{Role: RolePrimary, Epoch: epoch, At: time.Now()})
}

func (n *Node) mayLead() error {
	if n.self.Witness {
		return ErrWitness
	}
	if n.opts.CanLead != nil {
		return n.opts.CanLead()
	}
	return nil
}

// transferAway hands leadership to a healthy data node, retrying while this
// node is still leader.
func (n *Node) transferAway(ctx context.Context) {
	for attempt := 0; attempt < 20 && ctx.Err() == nil && n.raft.State() == raft.Leader; attempt++ {
		target, ok := n.transferTarget(attempt)
		if !ok {
			n.log.Warn("cluster: no data node to hand leadership to")
			select {
			case <-ctx.Done():
			case <-time.After(n.timing.ElectionTimeout):
			}
			continue
		}
		start := time.Now()
		// A dead or frozen target would cost a whole transfer timeout: ask
		// it first, with a short deadline.
		pctx, cancel := context.WithTimeout(ctx, n.timing.HeartbeatTimeout/2)
		err := n.call(pctx, target.Addr, controlRequest{Op: "ping", From: n.opts.ID})
		cancel()
		if err == nil {
			err = n.raft.LeadershipTransferToServer(raft.ServerID(target.ID), raft.ServerAddress(target.Addr)).Error()
			if err == nil {
				n.log.Info("cluster: leadership handed over", "to", target.ID, "took", time.Since(start).Round(time.Millisecond))
				return
			}
		}
		n.log.Warn("cluster: leadership hand-over failed; trying the next data node", "to", target.ID, "err", err)
		if attempt%2 == 1 {
			select {
			case <-ctx.Done():
			case <-time.After(n.timing.ElectionTimeout / 4):
			}
		}
	}
}

// transferTarget picks a data node other than this one, preferring one the
// leader is not failing to reach; attempt rotates among candidates.
func (n *Node) transferTarget(attempt int) (Peer, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var healthy, all []Peer
	for _, p := range n.opts.Peers {
		if p.Witness || p.ID == n.opts.ID {
			continue
		}
		all = append(all, p)
		if !n.failing[p.ID] {
			healthy = append(healthy, p)
		}
	}
	if len(healthy) > 0 {
		return healthy[attempt%len(healthy)], true
	}
	if len(all) > 0 {
		return all[attempt%len(all)], true
	}
	return Peer{}, false
}

func (n *Node) releaseVIP() {
	if n.opts.VIP == nil {
		return
	}
	if err := n.opts.VIP.Release(); err != nil {
		n.log.Error("cluster: VIP release failed", "err", err)
	}
}

// setRole records and delivers a role change.
func (n *Node) setRole(c RoleChange) {
	n.mu.Lock()
	n.role = c.Role
	if c.Role != RolePrimary {
		n.myEpoch = 0
	}
	close(n.roleWatch)
	n.roleWatch = make(chan struct{})
	n.mu.Unlock()
	n.log.Info("cluster: role", "role", c.Role.String(), "epoch", c.Epoch, "planned", c.Planned)
	n.emit(c)
}

func (n *Node) emit(c RoleChange) {
	if n.opts.OnRole != nil {
		n.opts.OnRole(c)
	}
}

// handleTransfer runs on the leader when a prepared standby asks for the
// role.
func (n *Node) handleTransfer(req controlRequest) error {
	if err := n.CheckEpoch("transfer request from "+req.From, req.Epoch); err != nil {
		return err
	}
	if n.raft.State() != raft.Leader {
		return ErrNotPrimary
	}
	var target Peer
	for _, p := range n.opts.Peers {
		if p.ID == req.From && !p.Witness {
			target = p
		}
	}
	if target.ID == "" || target.ID == n.opts.ID {
		return fmt.Errorf("cluster: %q is not another data node", req.From)
	}
	n.planned.Store(true)
	start := time.Now()
	if err := n.raft.LeadershipTransferToServer(raft.ServerID(target.ID), raft.ServerAddress(target.Addr)).Error(); err != nil {
		n.planned.Store(false)
		return fmt.Errorf("cluster: transfer to %s: %w", target.ID, err)
	}
	n.log.Info("cluster: switchover: leadership transferred", "to", target.ID, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Switchover performs a planned, make-before-break role swap between the
// data nodes. Called on the standby, it prepares (Takeover.PrepareTakeover:
// sessions started, frames committed) and then asks the primary to hand
// leadership over; called on the primary, it asks the standby to do that.
// It returns once the standby is primary under a new epoch; the old primary
// stops recording only after that epoch is committed.
func (n *Node) Switchover(ctx context.Context) error {
	if n.self.Witness {
		return ErrWitness
	}
	if err := n.WaitStarted(ctx); err != nil {
		return err
	}
	if r, _ := n.Role(); r == RolePrimary {
		other, ok := n.otherDataNode()
		if !ok {
			return ErrNoPeer
		}
		return n.call(ctx, other.Addr, controlRequest{Op: "switchover", From: n.opts.ID, Epoch: n.Epoch()})
	}
	return n.takeover(ctx)
}

// takeover is the standby's half of a switchover.
func (n *Node) takeover(ctx context.Context) error {
	if r, _ := n.Role(); r != RoleStandby {
		return fmt.Errorf("cluster: takeover needs a standby, this node is %s", r)
	}
	if err := n.mayLead(); err != nil {
		return fmt.Errorf("cluster: this node may not take over: %w", err)
	}
	// Know the leader and catch up with its epoch first: a transfer request
	// stamped with an older epoch is refused.
	addr, id := n.raft.LeaderWithID()
	for wait := 0; (addr == "" || n.fsm.State().Primary != string(id)) && wait < 100; wait++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		addr, id = n.raft.LeaderWithID()
	}
	if addr == "" {
		return errors.New("cluster: no leader known; cannot switch over")
	}
	before := n.Epoch()
	if n.opts.Takeover != nil {
		start := time.Now()
		if err := n.opts.Takeover.PrepareTakeover(ctx); err != nil {
			n.opts.Takeover.AbortTakeover()
			return fmt.Errorf("cluster: prepare takeover: %w", err)
		}
		n.log.Info("cluster: switchover: sessions prepared", "took", time.Since(start).Round(time.Millisecond))
	}
	fail := func(err error) error {
		if n.opts.Takeover != nil {
			if r, _ := n.Role(); r != RolePrimary {
				n.opts.Takeover.AbortTakeover()
			}
		}
		return err
	}
	// Leadership may move while we prepare (an election, a flap): ask the
	// leader of the moment, a few times.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(n.timing.ElectionTimeout / 2):
			}
			addr, id = n.raft.LeaderWithID()
			if addr == "" {
				continue
			}
			if r, _ := n.Role(); r == RolePrimary {
				err = nil // an earlier call did hand over after all
				break
			}
		}
		if err = n.call(ctx, string(addr), controlRequest{Op: "transfer", From: n.opts.ID, Epoch: n.Epoch()}); err == nil {
			break
		}
		err = fmt.Errorf("cluster: switchover via %s: %w", id, err)
	}
	if err != nil {
		return fail(err)
	}
	for {
		n.mu.Lock()
		r, e, w := n.role, n.myEpoch, n.roleWatch
		n.mu.Unlock()
		if r == RolePrimary && e > before {
			return nil
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("cluster: switchover: waiting to become primary: %w", ctx.Err()))
		case <-w:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) otherDataNode() (Peer, bool) {
	for _, p := range n.opts.Peers {
		if !p.Witness && p.ID != n.opts.ID {
			return p, true
		}
	}
	return Peer{}, false
}

// ProposeConfig commits a configuration hash under this primary's epoch;
// the FSM refuses it if a newer epoch has been committed meanwhile.
func (n *Node) ProposeConfig(hash string) error {
	r, e := n.Role()
	if r != RolePrimary {
		return ErrNotPrimary
	}
	data, _ := json.Marshal(command{Op: "config", Hash: hash, Epoch: e})
	f := n.raft.Apply(data, n.timing.ElectionTimeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: commit config: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}
