package cluster

import (
	"fmt"
	"io"
	"strings"
	"time"

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
		h.Preferred = ""
		if p, ok := choosePath(n.opts.Heartbeat.Paths, h); ok {
			h.Preferred = p.Name // the mirror's choice, loss considered
		}
		s.Heartbeat = &h
	}
	return s
}

// WriteText writes the status as `show cluster` prints it.
func (s Status) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: %s (raft %s, term %s)\n", s.ID, s.Role, s.RaftState, s.Term)
	fmt.Fprintf(&b, "epoch %d, primary %s, leader %s, lease fresh %v\n", s.Epoch, orNone(s.Primary), orNone(s.Leader), s.LeaseFresh)
	for _, m := range s.Members {
		kind := "data"
		if m.Witness {
			kind = "witness"
		}
		fmt.Fprintf(&b, "  member %-10s %-8s %-22s reachable=%v\n", m.ID, kind, m.Addr, m.Reachable)
	}
	if h := s.Heartbeat; h != nil {
		for _, p := range h.Paths {
			fmt.Fprintf(&b, "  link %-10s up=%-5v rtt=%-8v loss=%4.1f%% received=%d refused=%d\n",
				p.Name, p.Up, p.RTT.Round(time.Millisecond), 100*p.Loss, p.Received, p.Refused)
		}
		fmt.Fprintf(&b, "  peer %s firmware %s protocol %d; mirror path %s\n", orNone(h.PeerID), orNone(h.PeerFirmware), h.PeerProtocolVersion, orNone(h.Preferred))
		if h.VersionMismatch {
			b.WriteString("  ALARM: firmware/protocol version differs from the peer's (expected only during an upgrade)\n")
		}
		if h.ConfigMismatch {
			b.WriteString("  ALARM: configuration differs from the peer's\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// MirrorLossLimit is the heartbeat loss above which a path is passed over
// for the mirror when another path is up with less: TCP over a link that
// loses a fifth of its packets crawls (the integrators' 50 % loss test on
// the dedicated link would stall the mirror there while the LAN is clean).
const MirrorLossLimit = 0.2

// MirrorPath returns the heartbeat path the mirror should ship over: the
// first configured path (dedicated link first) whose heartbeats arrive with
// less than MirrorLossLimit loss, else the up path losing least; ok is
// false when none is up (or heartbeats are not configured). Path.Peer holds
// the peer's heartbeat address; the mirror dials its own port on the same
// host.
func (n *Node) MirrorPath() (p heartbeat.Path, ok bool) {
	if n.hb == nil {
		return heartbeat.Path{}, false
	}
	return choosePath(n.opts.Heartbeat.Paths, n.hb.Status())
}

// choosePath is MirrorPath's rule over a heartbeat status.
func choosePath(paths []heartbeat.Path, st heartbeat.Status) (heartbeat.Path, bool) {
	best, bestLoss := -1, 2.0
	for i, ps := range st.Paths {
		if i >= len(paths) || !ps.Up {
			continue
		}
		if ps.Loss < MirrorLossLimit {
			return paths[i], true
		}
		if ps.Loss < bestLoss {
			best, bestLoss = i, ps.Loss
		}
	}
	if best < 0 {
		return heartbeat.Path{}, false
	}
	return paths[best], true
}
