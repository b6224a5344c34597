package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// State is what a node remembers of the mirror across restarts and role
// changes: per source node and stream, the newest frame time it received
// (durably) from that node, and the highest epoch it accepted. Positions of
// one node's log mean nothing to another's, so resumption after a role
// change is by these times. The sender of a node uses the same State to
// know which of its own footage came from the peer (and need not go back).
// A State is safe for concurrent use; one per node, shared by its Sender
// and Receiver.
type State struct {
	path string
	mu   sync.Mutex
	data stateData
}

type stateData struct {
	Epoch uint64 `json:"epoch"`
	// Received maps source node -> stream -> newest frame time (unix ns).
	Received map[string]map[string]int64 `json:"received"`
	// Own maps peer node -> stream -> [from, until] (unix ns): footage this
	// node held of its own when the peer shipped to it, newer than what it
	// had received from the peer (from) up to its newest frame (until). If
	// the peer recorded the same window, this node ships its own part back
	// when it is primary again.
	Own map[string]map[string][2]int64 `json:"own,omitempty"`
}

// OpenState loads the state kept in the file at path ("" keeps it in
// memory only, for tests). A missing file is an empty state.
func OpenState(path string) (*State, error) {
	st := &State{path: path, data: stateData{Received: map[string]map[string]int64{}}}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mirror state: %w", err)
	}
	if err := json.Unmarshal(b, &st.data); err != nil {
		return nil, fmt.Errorf("mirror state %s: %w", path, err)
	}
	if st.data.Received == nil {
		st.data.Received = map[string]map[string]int64{}
	}
	return st, nil
}

// Received returns the newest frame time received from source, per stream.
func (st *State) Received(source string) map[string]time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := map[string]time.Time{}
	for s, t := range st.data.Received[source] {
		out[s] = time.Unix(0, t)
	}
	return out
}

// Own returns, per stream, the window of this node's own footage the peer
// may lack: (from, until].
func (st *State) Own(peer string) map[string][2]time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := map[string][2]time.Time{}
	for s, w := range st.data.Own[peer] {
		out[s] = [2]time.Time{time.Unix(0, w[0]), time.Unix(0, w[1])}
	}
	return out
}

// noteOwn records, when peer starts shipping, each stream whose newest
// frame is newer than anything received from peer (see stateData.Own).
func (st *State) noteOwn(peer string, newest map[string]time.Time) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	changed := false
	for s, t := range newest {
		ns, got := t.UnixNano(), st.data.Received[peer][s]
		w, ok := st.data.Own[peer][s]
		if ns <= got || ok && ns <= w[1] {
			continue
		}
		if !ok {
			w[0] = got
		}
		w[1] = ns
		if st.data.Own == nil {
			st.data.Own = map[string]map[string][2]int64{}
		}
		if st.data.Own[peer] == nil {
			st.data.Own[peer] = map[string][2]int64{}
		}
		st.data.Own[peer][s], changed = w, true
	}
	if !changed || st.path == "" {
		return nil
	}
	return st.saveLocked()
}

// Epoch returns the highest epoch accepted.
func (st *State) Epoch() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.data.Epoch
}

// update records newest times received from source and the epoch, and
// saves the state when it changed.
func (st *State) update(source string, newest map[string]time.Time, epoch uint64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	changed := false
	if epoch > st.data.Epoch {
		st.data.Epoch, changed = epoch, true
	}
	m := st.data.Received[source]
	if m == nil && len(newest) > 0 {
		m = map[string]int64{}
		st.data.Received[source] = m
	}
	for s, t := range newest {
		if ns := t.UnixNano(); ns > m[s] {
			m[s], changed = ns, true
		}
	}
	if !changed || st.path == "" {
		return nil
	}
	return st.saveLocked()
}

// saveLocked writes the state crash-safely: temp file, fsync, rename, fsync
// of the directory.
func (st *State) saveLocked() error {
	b, err := json.Marshal(&st.data)
	if err != nil {
		return fmt.Errorf("mirror state: %w", err)
	}
	tmp := st.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("mirror state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, st.path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(st.path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("mirror state %s: save: %w", st.path, err)
	}
	return nil
}
