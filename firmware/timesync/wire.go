package timesync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// PacketSize is the length of an NTP packet without extensions.
const PacketSize = 48

// maxRootDistance is RFC 5905's MAXDIST: a server whose own distance to
// its reference (root delay/2 + root dispersion) is larger is not trusted.
const maxRootDistance = 1500 * time.Millisecond

// Errors a reply is refused with; Parse wraps them with the detail.
var (
	// ErrMalformed: the reply is not an NTP server reply.
	ErrMalformed = errors.New("timesync: malformed reply")
	// ErrNotOurs: the reply does not echo our request's transmit
	// timestamp (a stale, replayed or spoofed packet).
	ErrNotOurs = errors.New("timesync: reply does not answer our request")
	// ErrUnsynchronised: the server says its own clock is not set (leap
	// indicator 3, stratum 16, or a distance to its reference over 1.5 s).
	ErrUnsynchronised = errors.New("timesync: server is not synchronised")
	// ErrKissOfDeath: the server told us to go away (stratum 0 with a
	// kiss code such as RATE or DENY).
	ErrKissOfDeath = errors.New("timesync: server sent a kiss-o'-death")
)

// Reply is a parsed server reply.
type Reply struct {
	Leap      uint8
	Version   uint8
	Stratum   uint8
	RootDelay time.Duration
	RootDisp  time.Duration
	RefID     [4]byte
	Receive   time.Time // T2: when the server received the request
	Transmit  time.Time // T3: when the server sent the reply
}

// Request returns a client request (version 4, mode 3) whose transmit
// timestamp is cookie: a random value the reply must echo in its origin
// field. Our own send time travels nowhere; it is read locally.
func Request(cookie uint64) []byte {
	b := make([]byte, PacketSize)
	b[0] = 0<<6 | 4<<3 | 3 // LI 0, VN 4, mode 3 (client)
	binary.BigEndian.PutUint64(b[40:], cookie)
	return b
}

// Parse checks a server's reply to the request that carried cookie.
func Parse(b []byte, cookie uint64) (Reply, error) {
	var r Reply
	if len(b) < PacketSize {
		return r, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), PacketSize)
	}
	r.Leap, r.Version = b[0]>>6, (b[0]>>3)&7
	if mode := b[0] & 7; mode != 4 {
		return r, fmt.Errorf("%w: mode %d, want 4 (server)", ErrMalformed, mode)
	}
	if r.Version < 3 || r.Version > 4 {
		return r, fmt.Errorf("%w: version %d, want 3 or 4", ErrMalformed, r.Version)
	}
	if origin := binary.BigEndian.Uint64(b[24:]); origin != cookie {
		return r, fmt.Errorf("%w: origin %#x", ErrNotOurs, origin)
	}
	r.Stratum = b[1]
	copy(r.RefID[:], b[12:16])
	if r.Stratum == 0 {
		return r, fmt.Errorf("%w: %q", ErrKissOfDeath, printable(r.RefID[:]))
	}
	if r.Leap == 3 || r.Stratum >= 16 {
		return r, fmt.Errorf("%w: leap %d, stratum %d", ErrUnsynchronised, r.Leap, r.Stratum)
	}
	r.RootDelay = short(binary.BigEndian.Uint32(b[4:]))
	r.RootDisp = short(binary.BigEndian.Uint32(b[8:]))
	if d := r.RootDelay/2 + r.RootDisp; d > maxRootDistance {
		return r, fmt.Errorf("%w: root distance %v", ErrUnsynchronised, d)
	}
	rx, tx := binary.BigEndian.Uint64(b[32:]), binary.BigEndian.Uint64(b[40:])
	if rx == 0 || tx == 0 {
		return r, fmt.Errorf("%w: receive or transmit timestamp unset", ErrMalformed)
	}
	r.Receive, r.Transmit = timestamp(rx), timestamp(tx)
	if r.Transmit.Before(r.Receive) {
		return r, fmt.Errorf("%w: sent %v before it received", ErrMalformed, r.Receive.Sub(r.Transmit))
	}
	return r, nil
}

// ntpEpoch is 1900-01-01, NTP era 0.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// timestamp converts a 64-bit NTP timestamp. Seconds with the top bit clear
// are taken as era 1 (from 2036-02-07), as RFC 4330 section 3 suggests, so
// the client works until 2104 whatever its own clock says.
func timestamp(v uint64) time.Time {
	sec, frac := int64(v>>32), v&0xffffffff
	if sec&(1<<31) == 0 {
		sec += 1 << 32
	}
	ns := int64((frac * 1e9) >> 32)
	return time.Unix(ntpEpoch+sec, ns).UTC()
}

// toTimestamp is timestamp's inverse (era 0 or 1 by the same rule).
func toTimestamp(t time.Time) uint64 {
	sec := t.Unix() - ntpEpoch
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return uint64(sec)<<32 | frac
}

// short converts NTP's 32-bit short format (16.16 seconds).
func short(v uint32) time.Duration {
	return time.Duration(int64(v>>16))*time.Second + time.Duration((int64(v&0xffff)*int64(time.Second))>>16)
}

// printable keeps a kiss code readable in logs whatever its bytes.
func printable(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}
