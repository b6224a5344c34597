// Package vip owns the pair's service address (VIP) on a data node: it adds
// and removes the address with netlink, announces it with gratuitous ARP
// (IPv4, github.com/mdlayher/arp) or an unsolicited neighbour advertisement
// (IPv6, github.com/mdlayher/ndp), and answers address resolution for it.
//
// # The VIP answers only while its holder is alive and fenced in
//
// The design puts the address on the LAN interface and lets the kernel
// answer ARP. That cannot survive a hung process: a SIGSTOPped (or
// deadlocked) nvrd keeps the address, its kernel keeps answering ARP, and
// the LAN sees two holders once the standby takes over. So this package
// does better:
//
//   - the address is added as a /32 (/128) on the loopback device, so the
//     kernel accepts traffic for it but never answers ARP/ND for it on the
//     LAN (arp_ignore=1 and arp_announce=2 are set on the LAN interface);
//   - the Manager answers ARP requests (and IPv6 neighbour solicitations)
//     for the VIP itself, and only while lease() holds: the cluster's lease,
//     fresh only while a raft quorum confirmed this node's leadership within
//     LeaderLeaseTimeout, which is shorter than the earliest another node
//     can win an election.
//
// A frozen holder therefore stops answering within the lease, before the
// standby can claim; a resumed one finds its lease stale and stays silent
// until the cluster has told it to Release.
//
// # Fencing
//
// Claim carries the epoch; a claim with an epoch lower than one already
// claimed is refused (ErrStaleEpoch) and changes nothing.
//
// # Concurrency
//
// Run owns the responder and re-announcement goroutine; Claim and Release
// may be called from any goroutine. Linux only.
package vip
