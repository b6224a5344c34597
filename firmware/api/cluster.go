package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ClusterBackend is what a Backend of a node of an appliance pair adds; the
// cluster endpoints answer 404 "not in a cluster" when the Backend does not
// implement it.
type ClusterBackend interface {
	// Cluster returns the pair's state as this node sees it.
	Cluster(ctx context.Context) (ClusterStatus, error)
	// Switchover performs a planned make-before-break role swap and returns
	// once the standby is the primary.
	Switchover(ctx context.Context) error
}

// ErrConflict: the request cannot be done in the current state (e.g. a
// switchover without a standby); answered 409.
var ErrConflict = errors.New("conflict")

// ClusterStatus is the pair's state on GET /api/v1/cluster.
type ClusterStatus struct {
	Node       string `json:"node"`
	Role       string `json:"role"`
	Epoch      uint64 `json:"epoch"`
	Primary    string `json:"primary"`
	Leader     string `json:"leader"`
	LeaseFresh bool   `json:"lease_fresh"`
	// ConfigHash is the configuration hash the primary committed through
	// raft under its epoch.
	ConfigHash string `json:"config_hash"`
	// Firmware is this node's version, PeerFirmware the peer's (from its
	// heartbeats).
	Firmware        string          `json:"firmware"`
	PeerFirmware    string          `json:"peer_firmware"`
	VersionMismatch bool            `json:"version_mismatch"`
	ConfigMismatch  bool            `json:"config_mismatch"`
	Takeovers       uint64          `json:"takeovers"`
	Members         []ClusterMember `json:"members"`
	Links           []ClusterLink   `json:"links"`
	Mirror          MirrorStatus    `json:"mirror"`
}

// ClusterMember is one raft voter.
type ClusterMember struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Witness   bool   `json:"witness"`
	Reachable bool   `json:"reachable"`
}

// ClusterLink is one heartbeat path to the peer.
type ClusterLink struct {
	Name     string   `json:"name"`
	Up       bool     `json:"up"`
	RTT      Duration `json:"rtt"`
	Loss     float64  `json:"loss"`
	Received uint64   `json:"received"`
	Refused  uint64   `json:"refused"`
}

// MirrorStatus is the footage mirror: the sender on the primary, the
// receiver on the standby.
type MirrorStatus struct {
	Side      string `json:"side"`
	Connected bool   `json:"connected"`
	// Path is the heartbeat path the mirror uses (dedicated link unless it
	// is down or losing packets, then the LAN).
	Path        string    `json:"path"`
	Peer        string    `json:"peer"`
	LagSeconds  float64   `json:"lag_seconds"`
	LagBytes    int64     `json:"lag_bytes"`
	AckedNewest time.Time `json:"acked_newest"`
	Batches     uint64    `json:"batches"`
	Bytes       uint64    `json:"bytes"`
	Refused     uint64    `json:"refused"`
	Reconnects  uint64    `json:"reconnects"`
	LastError   string    `json:"last_error"`
}

func (s *Server) clusterBackend(w http.ResponseWriter) (ClusterBackend, bool) {
	cb, ok := s.opts.Backend.(ClusterBackend)
	if !ok {
		writeError(w, http.StatusNotFound, errors.New("not in a cluster"))
	}
	return cb, ok
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.clusterBackend(w)
	if !ok {
		return
	}
	st, err := cb.Cluster(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// switchoverTimeout bounds a switchover request.
const switchoverTimeout = 60 * time.Second

func (s *Server) clusterSwitchover(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p, err := s.opts.Backend.Authenticate(r.Context(), strings.TrimSpace(token))
	if err != nil || p.Role != "admin" {
		writeError(w, http.StatusForbidden, fmt.Errorf("a switchover needs an admin token"))
		return
	}
	cb, ok := s.clusterBackend(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), switchoverTimeout)
	defer cancel()
	start := time.Now()
	if err := cb.Switchover(ctx); err != nil {
		if errors.Is(err, ErrConflict) {
			writeError(w, http.StatusConflict, err)
			return
		}
		writeBackendError(w, err)
		return
	}
	st, err := cb.Cluster(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	s.opts.Logger.Info("switchover done", "by", p.Name, "took", time.Since(start).Round(time.Millisecond), "primary", st.Primary, "epoch", st.Epoch)
	writeJSON(w, http.StatusOK, st)
}
