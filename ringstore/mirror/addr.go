package mirror

import (
	"net"
	"strconv"
)

// DefaultPort is the TCP port the Receiver listens on when the
// configuration names none.
const DefaultPort = 7445

// PeerAddr turns a path chooser that names the peer's address on the chosen
// path (host:port of anything on it, e.g. the heartbeat address of
// cluster.Node.MirrorPath) into SenderOptions.Addr: the same host, the
// mirror's port.
func PeerAddr(peer func() (addr string, ok bool), port int) func() (string, bool) {
	return func() (string, bool) {
		a, ok := peer()
		if !ok {
			return "", false
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		return net.JoinHostPort(host, strconv.Itoa(port)), true
	}
}
