package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ProtocolVersion is the heartbeat wire version this firmware speaks.
const ProtocolVersion = 1

// MaxIDLen bounds node IDs and firmware versions on the wire.
const MaxIDLen = 64

const (
	magic      = "NVHB"
	fixedLen   = 4 + 1 + 1 + 2 + 8 + 16 + 8 + 8 + 8 + 8 + 8 + 32
	macLen     = sha256.Size
	minWireLen = fixedLen + 1 + 1 + macLen
	// MaxWireLen is the largest datagram Marshal produces.
	MaxWireLen = fixedLen + 1 + MaxIDLen + 1 + MaxIDLen + macLen
)

// Errors a decoder returns; the service counts and logs them by kind.
var (
	ErrMalformed = errors.New("heartbeat: malformed datagram")
	ErrBadMAC    = errors.New("heartbeat: bad MAC (wrong pair key or tampered)")
)

// Message is one heartbeat.
type Message struct {
	Version    uint8
	Path       uint8
	Epoch      uint64
	Restart    [16]byte
	Seq        uint64
	SentNanos  int64
	EchoSeq    uint64
	EchoSent   int64
	EchoHold   int64
	ConfigHash [32]byte
	NodeID     string
	Firmware   string
}

// Marshal appends the authenticated encoding of m to dst.
func (m *Message) Marshal(dst []byte, key []byte) ([]byte, error) {
	if len(m.NodeID) == 0 || len(m.NodeID) > MaxIDLen || len(m.Firmware) > MaxIDLen {
		return nil, fmt.Errorf("heartbeat: node ID (%d bytes) or firmware version (%d bytes) out of range", len(m.NodeID), len(m.Firmware))
	}
	start := len(dst)
	dst = append(dst, magic...)
	dst = append(dst, m.Version, m.Path, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, m.Epoch)
	dst = append(dst, m.Restart[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.SentNanos))
	dst = binary.BigEndian.AppendUint64(dst, m.EchoSeq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.EchoSent))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.EchoHold))
	dst = append(dst, m.ConfigHash[:]...)
	dst = append(dst, byte(len(m.NodeID)))
	dst = append(dst, m.NodeID...)
	dst = append(dst, byte(len(m.Firmware)))
	dst = append(dst, m.Firmware...)
	mac := hmac.New(sha256.New, key)
	mac.Write(dst[start:])
	return mac.Sum(dst), nil
}

// Unmarshal authenticates b with key and decodes it. The MAC is checked
// before any field is trusted; a datagram of another protocol version is
// still decoded (the caller reports the mismatch).
func Unmarshal(b []byte, key []byte) (*Message, error) {
	if len(b) < minWireLen || len(b) > MaxWireLen || string(b[:4]) != magic {
		return nil, ErrMalformed
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return nil, ErrBadMAC
	}
	m := &Message{Version: body[4], Path: body[5]}
	p := body[8:]
	m.Epoch = binary.BigEndian.Uint64(p)
	copy(m.Restart[:], p[8:24])
	m.Seq = binary.BigEndian.Uint64(p[24:])
	m.SentNanos = int64(binary.BigEndian.Uint64(p[32:]))
	m.EchoSeq = binary.BigEndian.Uint64(p[40:])
	m.EchoSent = int64(binary.BigEndian.Uint64(p[48:]))
	m.EchoHold = int64(binary.BigEndian.Uint64(p[56:]))
	copy(m.ConfigHash[:], p[64:96])
	p = p[96:]
	n := int(p[0])
	if n == 0 || n > MaxIDLen || len(p) < 1+n+1 {
		return nil, ErrMalformed
	}
	m.NodeID = string(p[1 : 1+n])
	p = p[1+n:]
	f := int(p[0])
	if f > MaxIDLen || len(p) < 1+f || (len(p) > 1+f && m.Version <= ProtocolVersion) {
		return nil, ErrMalformed
	}
	// A newer protocol may append fields after the firmware version; this
	// version ignores them (firmware N-1 reads N's heartbeats).
	m.Firmware = string(p[1 : 1+f])
	return m, nil
}
