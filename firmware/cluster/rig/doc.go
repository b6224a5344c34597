// Package rig builds the pair's network test rig out of Linux network
// namespaces, for tests: a "LAN" bridge in its own namespace, one namespace
// each for the primary, the standby, the witness, a camera and a client (the
// VMS side), every one cabled to the bridge with a veth pair (lan0), plus a
// direct veth "dedicated link" (ded0) between primary and standby.
//
//	           [ns lan: bridge br0]
//	  lan0 /    |      |      |     \ lan0
//	primary  standby witness camera client
//	   ded0 \___/ ded0
//
// Addresses: LAN 10.77.0.0/24 (primary .1, standby .2, witness .3, camera
// .4, client .5; VIP .100) and fd77::/64 (same host numbers, VIP fd77::100;
// duplicate address detection off), dedicated link 10.78.0.1/30 and .2.
//
// Faults: Loss adds an nftables rule (numgen random mod 100 < P drop) on an
// interface's output; Delay steers its output to an NFQUEUE (iptables-nft,
// since this kernel lacks nft's queue expression) served by package nfdelay
// in a helper process; LinkDown cuts a cable; processes started with Start
// can be frozen (SIGSTOP), thawed and killed (SIGKILL).
//
// Every namespace name starts with a prefix unique to the test; New registers
// a t.Cleanup that kills every process the rig started and deletes every
// namespace (and with them every link and nft table), on failure too.
// Traffic never leaves the namespaces. A Rig is used from the test
// goroutine; Proc output is collected by one goroutine per process, joined
// when the process is stopped.
package rig
