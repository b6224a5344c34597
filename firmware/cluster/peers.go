package cluster

import (
	"fmt"
	"strings"
)

// Peer is one raft voter of the pair.
type Peer struct {
	ID string
	// Addr is the node's raft/control address on the LAN (host:port).
	Addr string
	// Witness marks the third voter: it votes, never records, never holds
	// the VIP, and hands leadership to a data node as soon as it wins it.
	Witness bool
}

// ParsePeers parses "id=host:port,id=host:port,id=host:port/witness".
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, addr, ok := strings.Cut(f, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("cluster: peer %q: want id=host:port[/witness]", f)
		}
		p := Peer{ID: id, Addr: addr}
		if a, ok := strings.CutSuffix(addr, "/witness"); ok {
			p.Addr, p.Witness = a, true
		}
		if seen[id] {
			return nil, fmt.Errorf("cluster: peer %q listed twice", id)
		}
		seen[id] = true
		out = append(out, p)
	}
	return out, nil
}

// FormatPeers is the inverse of ParsePeers.
func FormatPeers(ps []Peer) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.ID + "=" + p.Addr)
		if p.Witness {
			b.WriteString("/witness")
		}
	}
	return b.String()
}
