package cluster

import (
	"errors"
	"fmt"
	"time"
)

// leaseCheckSlack is how late hashicorp/raft's leader may notice an expired
// lease: it re-checks at most minCheckInterval (10 ms) after the lease of the
// least recently contacted quorum member runs out.
const leaseCheckSlack = 10 * time.Millisecond

// ErrTiming is returned (wrapped) when Timing would let a follower win an
// election before a cut-off leader has stepped down.
var ErrTiming = errors.New("cluster: unsafe timing")

// Timing holds the raft timings. The zero value means the defaults, chosen
// for a LAN. hashicorp/raft's follower re-arms its timer for a random
// 1×–2× HeartbeatTimeout each time it finds the leader recent, so a dead
// leader is noticed 1×–3× HeartbeatTimeout after its last contact: 0.4–1.2 s
// with the defaults, inside the 1.5 s target.
type Timing struct {
	// HeartbeatTimeout: a follower that has not heard from the leader for a
	// random time between 1× and 2× this becomes a candidate (1×–3× after
	// the last contact, see above). Default 400 ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: a candidate restarts its election after 1×–2× this.
	// Default HeartbeatTimeout.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: a leader that has not had a quorum's answer for
	// this long steps down (and drops the VIP). Default 300 ms.
	LeaderLeaseTimeout time.Duration
	// DriftMargin covers clock-rate drift between the leader's lease and a
	// follower's election timer. Default 50 ms: 12 % of the default
	// HeartbeatTimeout, far above any crystal's drift. Scheduling delay needs
	// no margin for the VIP: it answers only while the wall-clock time since
	// the start of the last quorum-confirmed round is below the lease, so a
	// starved leader is silent when it wakes, however late its step-down.
	DriftMargin time.Duration
	// CommitTimeout bounds how long raft batches before a heartbeat-free
	// commit. Default 20 ms.
	CommitTimeout time.Duration
}

func (t Timing) withDefaults() Timing {
	if t.HeartbeatTimeout <= 0 {
		t.HeartbeatTimeout = 400 * time.Millisecond
	}
	if t.ElectionTimeout <= 0 {
		t.ElectionTimeout = t.HeartbeatTimeout
	}
	if t.LeaderLeaseTimeout <= 0 {
		t.LeaderLeaseTimeout = 300 * time.Millisecond
	}
	if t.DriftMargin <= 0 {
		t.DriftMargin = 50 * time.Millisecond
	}
	if t.CommitTimeout <= 0 {
		t.CommitTimeout = 20 * time.Millisecond
	}
	return t
}

// Validate checks the fencing inequality: a leader cut off from the quorum
// steps down at the latest LeaderLeaseTimeout + leaseCheckSlack after its
// last quorum contact; the earliest a follower can become a candidate is
// HeartbeatTimeout after its last contact, which is no earlier. So
//
//	LeaderLeaseTimeout + leaseCheckSlack + DriftMargin < HeartbeatTimeout
//
// guarantees the old leader has dropped the VIP before a new one can exist.
func (t Timing) Validate() error {
	t = t.withDefaults()
	if t.ElectionTimeout < t.HeartbeatTimeout {
		return fmt.Errorf("%w: ElectionTimeout %v below HeartbeatTimeout %v", ErrTiming, t.ElectionTimeout, t.HeartbeatTimeout)
	}
	if got := t.LeaderLeaseTimeout + leaseCheckSlack + t.DriftMargin; got >= t.HeartbeatTimeout {
		return fmt.Errorf("%w: LeaderLeaseTimeout %v + lease check slack %v + drift margin %v = %v must be below HeartbeatTimeout %v (the earliest a follower can win an election)",
			ErrTiming, t.LeaderLeaseTimeout, leaseCheckSlack, t.DriftMargin, got, t.HeartbeatTimeout)
	}
	return nil
}
