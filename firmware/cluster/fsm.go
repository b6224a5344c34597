package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// State is the replicated state of the pair.
type State struct {
	// Epoch is the raft log index of the newest committed "primary" entry.
	Epoch uint64 `json:"epoch"`
	// Primary is the node that applied it: the only node allowed to record,
	// hold the VIP and ship footage.
	Primary string `json:"primary"`
	// ConfigHash is the newest committed configuration hash, and
	// ConfigEpoch the epoch it was committed under.
	ConfigHash  string `json:"config_hash,omitempty"`
	ConfigEpoch uint64 `json:"config_epoch,omitempty"`
}

// command is one raft log entry (JSON).
type command struct {
	Op    string `json:"op"` // "primary" or "config"
	ID    string `json:"id,omitempty"`
	Hash  string `json:"hash,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
}

// fsm applies commands. Apply runs on raft's FSM goroutine; State from any.
type fsm struct {
	mu      sync.Mutex
	st      State
	changed chan struct{} // cap 1, signalled after every change
}

func newFSM() *fsm { return &fsm{changed: make(chan struct{}, 1)} }

func (f *fsm) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("cluster: undecodable log entry %d: %w", l.Index, err)
	}
	f.mu.Lock()
	var res any
	switch c.Op {
	case "primary":
		f.st.Epoch, f.st.Primary = l.Index, c.ID
		res = l.Index
	case "config":
		if c.Epoch < f.st.Epoch {
			res = &StaleEpochError{What: "config change", Got: c.Epoch, Highest: f.st.Epoch}
		} else {
			f.st.ConfigHash, f.st.ConfigEpoch = c.Hash, c.Epoch
		}
	default:
		res = fmt.Errorf("cluster: unknown log entry op %q at %d", c.Op, l.Index)
	}
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return res
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return snapshot{f.State()}, nil }

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st State
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

type snapshot struct{ st State }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.st); err != nil {
		sink.Cancel()
		return fmt.Errorf("cluster: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}
