package heartbeat

import (
	"encoding/hex"
	"time"
)

// PathStatus is one path's state as seen from this node.
type PathStatus struct {
	Name string `json:"name"`
	// Up: an accepted heartbeat arrived within DeadAfter.
	Up bool `json:"up"`
	// RTT is the smoothed round-trip time (0 until measured).
	RTT time.Duration `json:"rtt_ns"`
	// Loss is the fraction of the peer's recent heartbeats (up to 200,
	// ignoring the newest 10 still in flight) that did not arrive.
	Loss float64 `json:"loss"`
	// LastHeard is when the newest accepted heartbeat arrived.
	LastHeard time.Time `json:"last_heard"`
	Received  uint64    `json:"received"`
	Refused   uint64    `json:"refused"`
}

// Status is a snapshot of the heartbeat view.
type Status struct {
	Paths []PathStatus `json:"paths"`
	// Preferred is the first path that is up ("" when none): the mirror's choice.
	Preferred string `json:"preferred"`
	// Peer fields are from the newest accepted heartbeat.
	PeerID              string `json:"peer_id"`
	PeerFirmware        string `json:"peer_firmware"`
	PeerProtocolVersion int    `json:"peer_protocol_version"`
	PeerConfigHash      string `json:"peer_config_hash"`
	PeerEpoch           uint64 `json:"peer_epoch"`
	// VersionMismatch: the peer runs another firmware or heartbeat protocol
	// version (expected only during a rolling upgrade).
	VersionMismatch bool `json:"version_mismatch"`
	// ConfigMismatch: the peer's config hash differs from ours.
	ConfigMismatch bool `json:"config_mismatch"`
}

// Status returns the current view.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{}
	for _, p := range s.paths {
		ps := PathStatus{Name: p.Name, Up: p.up, RTT: p.rtt, LastHeard: p.lastAt, Received: p.recv, Refused: p.refused, Loss: p.loss()}
		if p.up && st.Preferred == "" {
			st.Preferred = p.Name
		}
		st.Paths = append(st.Paths, ps)
	}
	if s.peer.seen {
		st.PeerID, st.PeerFirmware, st.PeerProtocolVersion = s.peer.id, s.peer.firmware, int(s.peer.version)
		st.PeerConfigHash = hex.EncodeToString(s.peer.config[:])
		st.PeerEpoch = s.peer.epoch
		st.VersionMismatch = s.peer.firmware != s.opts.FirmwareVersion || s.peer.version != ProtocolVersion
		var mine [32]byte
		if s.opts.ConfigHash != nil {
			mine = s.opts.ConfigHash()
		}
		st.ConfigMismatch = mine != s.peer.config
	}
	return st
}

func (p *pathState) loss() float64 {
	if p.high <= 10 {
		return 0
	}
	hi := p.high - 10
	lo := uint64(1)
	if hi > 200 {
		lo = hi - 199
	}
	got := 0
	for q := lo; q <= hi; q++ {
		if p.win[q%256] == q {
			got++
		}
	}
	return 1 - float64(got)/float64(hi-lo+1)
}
