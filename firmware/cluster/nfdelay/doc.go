// Package nfdelay is the test rig's delay-with-jitter tool: this kernel has
// no netem, so packets are steered to an NFQUEUE (iptables -j NFQUEUE; the
// rig's 6.18 kernel has xt_NFQUEUE through nft_compat but not nft's own
// "queue" expression) and a Delayer holds each one for Delay ± Jitter
// (uniform) before accepting it. Packets may be reordered, as on a real
// congested link.
//
// Run owns the netlink socket and one release goroutine; both end when its
// context is done, after every held packet has been accepted.
package nfdelay
