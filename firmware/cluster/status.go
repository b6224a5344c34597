package cluster

import (
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
)

// MemberStatus is one voter as this node sees it.
type MemberStatus struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Witness bool   `json:"witness"`
	// Reachable is meaningful on the leader: raft is not failing to
	// heartbeat it.
	Reachable bool `json:"reachable"`
}

// Status is what `show cluster` and the API show.
type Status struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// Epoch is the highest epoch known; Primary the node it names.
	Epoch   uint64 `json:"epoch"`
	Primary string `json:"primary"`
	// Leader is the raft leader this node follows ("" while electing).
	Leader     string `json:"leader"`
	RaftState  string `json:"raft_state"`
	Term       string `json:"term"`
	LeaseFresh bool   `json:"lease_fresh"`
	ConfigHash string `json:"config_hash,omitempty"`
	// Members are the three voters.
	Members []MemberStatus `json:"members"`
	// Heartbeat is the two-path view (nil on the witness).
	Heartbeat *heartbeat.Status `json:"heartbeat,omitempty"`
}

// Status returns a snapshot; it is safe from any goroutine once Run started.
func (n *Node) Status() Status {
	st := n.fsm.State()
	r, _ := n.Role()
	s := Status{ID: n.opts.ID, Role: r.String(), Epoch: n.Epoch(), Primary: st.Primary, ConfigHash: st.ConfigHash, LeaseFresh: n.LeaseFresh()}
	select {
	case <-n.started:
		_, id := n.raft.LeaderWithID()
		s.Leader = string(id)
		s.RaftState = n.raft.State().String()
		s.Term = n.raft.Stats()["term"]
	default:
		s.RaftState = "not started"
	}
	n.mu.Lock()
	for _, p := range n.opts.Peers {
		s.Members = append(s.Members, MemberStatus{ID: p.ID, Addr: p.Addr, Witness: p.Witness, Reachable: !n.failing[p.ID]})
	}
	n.mu.Unlock()
	if n.hb != nil {
		h := n.hb.Status()
		s.Heartbeat = &h
	}
	return s
}
