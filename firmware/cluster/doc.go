// Package cluster owns the roles of an appliance pair: which of the two data
// nodes records (the primary), fencing by epoch, the service address (VIP)
// and the two-path heartbeats. Three raft voters decide (github.com/hashicorp/
// raft with raft-boltdb/v2): the primary, the standby and a witness
// (`nvrd witness`). There is no home-made quorum.
//
// # Protocol (what a Node does, in order)
//
//  1. Raft runs over the LAN on an authenticated stream layer: mutual TLS 1.3
//     with the pair's keys (package pairing). The first byte after the
//     handshake says what the stream is: raft ('R') or a control call ('C':
//     ping, transfer, switchover). A peer without a certificate of the pair's
//     CA cannot connect.
//  2. On first start every node bootstraps the same three-voter
//     configuration.
//  3. Recording role = raft leadership, restricted to data nodes. A leader
//     that may not record (the witness, or a data node whose CanLead fails,
//     e.g. its store format is newer than its firmware) hands leadership at
//     once to a data node, pinging candidates first (a dead or frozen
//     target would cost a whole transfer timeout).
//  4. A data node that becomes leader applies {"op":"primary","id":self};
//     the committed entry's log index is the epoch. Only then does it claim
//     the VIP (stamped with the epoch) and call OnRole(RolePrimary, epoch).
//  5. On losing leadership the node releases the VIP and calls
//     OnRole(RoleStandby) at once. hashicorp/raft steps a leader down when
//     it has not heard from a quorum for LeaderLeaseTimeout; Timing.Validate
//     (called by New) asserts LeaderLeaseTimeout + 10 ms check slack + a
//     drift margin < HeartbeatTimeout, the earliest another node can win.
//  6. No preemption: a returning node is a follower (standby) until a
//     switchover or a failure of the primary.
//  7. Switchover is make-before-break: the standby's Takeover.PrepareTakeover
//     starts every camera session and confirms frames are committed; the
//     standby then asks the leader (control call "transfer", carrying its
//     epoch) to LeadershipTransferToServer it; the new leader commits its
//     epoch and becomes primary; the old primary keeps recording until it
//     sees that epoch committed (or HandoverWait passes), and only then gets
//     OnRole(RoleStandby, Planned).
//  8. Fencing: CheckEpoch refuses (StaleEpochError, logged) any mirror
//     message, config change or request from an epoch below the highest
//     seen; config changes are committed through raft with the proposer's
//     epoch and refused by the FSM when a newer epoch was committed first.
//
// # Better details than the design
//
//   - The VIP answers only under a fresh quorum lease (package vip): a
//     SIGSTOPped primary's kernel would otherwise keep answering ARP for the
//     address and the LAN would see two holders. The address lives on lo and
//     the vip.Manager answers ARP/ND for it itself, only while LeaseFresh:
//     a quorum confirmed this node's leadership (raft VerifyLeader every
//     HeartbeatTimeout/6, or the epoch commit) within LeaderLeaseTimeout.
//   - Default timings are 400 ms heartbeat/election timeout, a 300 ms
//     lease and a 50 ms drift margin: hashicorp/raft notices a dead leader
//     1×–3× HeartbeatTimeout after the last contact (its follower timer
//     re-arms for a random 1×–2× whenever the leader was recent), so 400 ms
//     keeps detection under the 1.5 s target; the lease is as long as the
//     inequality allows, because a leader starved of CPU for longer than the
//     lease steps down (a 200 ms lease flapped on a machine at load 12).
//   - Membership lives in raft's own configuration (itself replicated log
//     state), not in the FSM; the FSM holds epoch, primary and config hash.
//
// # Heartbeats
//
// When Options.Heartbeat has paths, the node runs package heartbeat (UDP,
// HMAC-SHA256 with the pair key, this node's epoch, restart identity,
// sequence, versions, config hash) and shows it in Status. Heartbeats feed
// status, mismatch alarms and the mirror's path choice (MirrorPath: the
// first path up losing under MirrorLossLimit of its heartbeats, else the up
// path losing least: TCP crawls over the 50 %-loss link integrators test
// with); they never decide roles.
//
// # Concurrency
//
// Run owns every goroutine the node starts (raft, transport, role loop,
// lease loop, observer, heartbeats) and joins them before returning. OnRole
// is called from one goroutine, in order. Status, Role, Epoch, CheckEpoch,
// LeaseFresh, Switchover and ProposeConfig are safe from any goroutine once
// Run has started (WaitStarted).
package cluster
