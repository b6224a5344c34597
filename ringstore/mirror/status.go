package mirror

import (
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// Status is a snapshot of one side of the mirror, for the API, `show
// cluster` and metrics.
type Status struct {
	// Connected reports a live session; Peer is the other node's ID and
	// Addr its address.
	Connected bool   `json:"connected"`
	Peer      string `json:"peer,omitempty"`
	Addr      string `json:"addr,omitempty"`
	// Version is the protocol version in use; Epoch the sender's epoch.
	Version uint8  `json:"version,omitempty"`
	Epoch   uint64 `json:"epoch,omitempty"`
	// Acked is the sender's log position the standby made durable, and
	// AckedNewest the newest frame time it holds from the sender.
	Acked       ringstore.Position `json:"acked"`
	AckedNewest time.Time          `json:"acked_newest"`
	// PrimaryNewest is the primary's newest committed frame time.
	PrimaryNewest time.Time `json:"primary_newest"`
	// LagSeconds is PrimaryNewest minus AckedNewest (0 when caught up);
	// LagBytes the primary's log bytes after Acked (sender only).
	LagSeconds float64 `json:"lag_seconds"`
	LagBytes   int64   `json:"lag_bytes"`
	// Batches, Records and Bytes count what was shipped (sender) or
	// received (receiver).
	Batches uint64 `json:"batches"`
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
	// Refused counts refused connections and messages (receiver);
	// Reconnects the sessions that ended (sender).
	Refused    uint64 `json:"refused"`
	Reconnects uint64 `json:"reconnects"`
	// LastError is the last failure or refusal, for operators.
	LastError string `json:"last_error,omitempty"`
}
