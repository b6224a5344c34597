package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// A planned switchover is make-before-break: the standby starts its camera
// sessions while the primary still records and its mirror still appends
// the primary's footage into the same streams. A stream has one writer, so
// while the node prepares, its sessions' calls are held in memory; when it
// becomes primary (the mirror has stopped), each camera's held footage is
// replayed from just after the newest frame the mirror delivered, found by
// content (both nodes receive the same encoded frames), and the session's
// times are shifted by the small difference between the two nodes' clocks
// for that camera so that the stream continues without a gap or a frame
// twice.

// The same holding keeps a primary whose quorum lease went stale (it was
// frozen, or cut off) from writing: frames appended while the lease is not
// fresh wait in memory, and go to the store when the lease is confirmed
// again, or are dropped when the node stands down. So a primary resumed
// from SIGSTOP, whose sessions deliver what the cameras sent meanwhile
// before raft has deposed it, records nothing into a window its successor
// already records.

// maxHeldBytes bounds what one camera holds while a takeover is prepared.
const maxHeldBytes = 32 << 20

// handoverSet makes the recorder's stream writers on a node of a pair.
type handoverSet struct {
	store *ringstore.Store
	log   *slog.Logger

	mu      sync.Mutex
	holding bool
	writers map[string]*handoverWriter
	// gate reports whether this node may write now (cluster.Node's
	// LeaseFresh); nil always.
	gate func() bool
}

// setGate sets the lease gate of writers made from now on.
func (hs *handoverSet) setGate(gate func() bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.gate = gate
}

func newHandoverSet(store *ringstore.Store, log *slog.Logger) *handoverSet {
	return &handoverSet{store: store, log: log, writers: map[string]*handoverWriter{}}
}

// writer is the recorder.ManagerOptions.Writer of the pair's node.
func (hs *handoverSet) writer(name string) (recorder.FrameWriter, error) {
	if _, err := hs.store.Stream(name); err != nil {
		return nil, err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	w := &handoverWriter{store: hs.store, name: name, holding: hs.holding, gate: hs.gate}
	hs.writers[name] = w
	return w, nil
}

// hold makes writers made from now on hold their calls.
func (hs *handoverSet) hold() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.holding = true
}

// firstHeld returns the time of the first frame the camera's writer held.
func (hs *handoverSet) firstHeld(name string) (time.Time, bool) {
	hs.mu.Lock()
	w := hs.writers[name]
	hs.mu.Unlock()
	if w == nil {
		return time.Time{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range w.held {
		if op.frame != nil {
			return op.frame.Time, true
		}
	}
	return time.Time{}, false
}

// release replays every holding writer's footage after the mirror's and
// lets them write through; it returns what it did per camera, for the log.
func (hs *handoverSet) release() {
	hs.mu.Lock()
	hs.holding = false
	ws := make([]*handoverWriter, 0, len(hs.writers))
	for _, w := range hs.writers {
		ws = append(ws, w)
	}
	hs.mu.Unlock()
	for _, w := range ws {
		if r, err := w.release(); err != nil {
			hs.log.Warn("switchover: replay of a camera's first frames failed", "camera", w.name, "err", err)
		} else if r != "" {
			hs.log.Info("switchover: camera continues the mirrored footage", "camera", w.name, "how", r)
		}
	}
}

// abort drops what the writers hold (the switchover failed).
func (hs *handoverSet) abort() {
	hs.mu.Lock()
	hs.holding = false
	hs.mu.Unlock()
	hs.silence()
}

// silence makes every writer made so far drop what it is given: their
// sessions are being stopped (this node stood down), and a frame a stopping
// session still appends must not land after the mirror has started to
// append the new primary's footage.
func (hs *handoverSet) silence() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, w := range hs.writers {
		w.mu.Lock()
		w.held, w.heldBytes, w.holding, w.discard = nil, 0, false, true
		w.gated, w.gatedSize = nil, 0
		w.mu.Unlock()
	}
}

// heldOp is one call held while holding.
type heldOp struct {
	tracks []ringstore.Track
	frame  *ringstore.Frame
	gap    *ringstore.Gap
}

// handoverWriter is one camera's writer (recorder.FrameWriter).
type handoverWriter struct {
	store *ringstore.Store
	name  string

	mu        sync.Mutex
	holding   bool
	discard   bool // after an aborted takeover: the session is being stopped
	held      []heldOp
	heldBytes int
	offset    time.Duration // added to every frame time after a replay
	overflow  bool
	gate      func() bool
	gated     []heldOp // calls waiting for a fresh lease
	gatedSize int
}

// passGate reports whether a call may go to the store now; if not, it
// keeps op for later. Called with w.mu held, outside holding.
func (w *handoverWriter) passGate(op heldOp, size int) bool {
	if w.gate == nil {
		return true
	}
	if !w.gate() {
		if w.gatedSize+size <= maxHeldBytes {
			w.gated = append(w.gated, op)
			w.gatedSize += size
		}
		return false
	}
	if len(w.gated) > 0 {
		ops := w.gated
		w.gated, w.gatedSize = nil, 0
		sw, err := w.store.Stream(w.name)
		if err != nil {
			return true
		}
		for _, g := range ops {
			switch {
			case g.tracks != nil:
				sw.SetTracks(g.tracks)
			case g.gap != nil:
				sw.MarkGap(g.gap.Cause, g.gap.Start)
			case g.frame != nil:
				sw.Append(*g.frame)
			}
		}
	}
	return true
}

func (w *handoverWriter) SetTracks(tracks []ringstore.Track) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holding || w.discard {
		w.held = append(w.held, heldOp{tracks: append([]ringstore.Track(nil), tracks...)})
		return nil
	}
	if !w.passGate(heldOp{tracks: append([]ringstore.Track(nil), tracks...)}, 0) {
		return nil
	}
	sw, err := w.store.Stream(w.name)
	if err != nil {
		return err
	}
	return sw.SetTracks(tracks)
}

func (w *handoverWriter) Append(f ringstore.Frame) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.discard {
		return 0, nil
	}
	if w.holding {
		if w.heldBytes+len(f.Data) > maxHeldBytes {
			w.overflow = true
			return 0, nil
		}
		f.Data = bytes.Clone(f.Data)
		w.held = append(w.held, heldOp{frame: &f})
		w.heldBytes += len(f.Data)
		return 0, nil
	}
	f.Time = f.Time.Add(w.offset)
	if !w.passGate(heldOp{frame: &ringstore.Frame{Track: f.Track, Time: f.Time, DTSOffset: f.DTSOffset, Key: f.Key, Data: bytes.Clone(f.Data)}}, len(f.Data)) {
		return 0, nil
	}
	sw, err := w.store.Stream(w.name)
	if err != nil {
		return 0, err
	}
	return sw.Append(f)
}

func (w *handoverWriter) MarkGap(cause ringstore.GapCause, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.discard {
		return
	}
	if w.holding {
		w.held = append(w.held, heldOp{gap: &ringstore.Gap{Cause: cause, Start: at}})
		return
	}
	if !w.passGate(heldOp{gap: &ringstore.Gap{Cause: cause, Start: at.Add(w.offset)}}, 0) {
		return
	}
	if sw, err := w.store.Stream(w.name); err == nil {
		sw.MarkGap(cause, at.Add(w.offset))
	}
}

// lastFrames reads the stream's newest frame of each track (the mirror's
// last delivery), with the video frame's content.
func (w *handoverWriter) lastFrames(video uint8) (map[uint8]ringstore.ReadFrame, error) {
	newest, ok := w.store.NewestByStream()[w.name]
	out := map[uint8]ringstore.ReadFrame{}
	if !ok || newest.IsZero() {
		return out, nil
	}
	r, err := w.store.Frames(w.name, newest.Add(-5*time.Second), newest.Add(time.Nanosecond))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if f.Track != video {
			f.Data = nil
		}
		out[f.Track] = f
	}
}

// release replays the held calls after the mirror's newest frame.
func (w *handoverWriter) release() (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.holding {
		return "", nil
	}
	w.holding = false
	held := w.held
	w.held, w.heldBytes = nil, 0
	var tracks []ringstore.Track
	video := uint8(255)
	for _, op := range held {
		if op.tracks != nil {
			tracks = op.tracks
			break
		}
	}
	for _, t := range tracks {
		if t.Codec.IsVideo() {
			video = t.ID
		}
	}
	last, err := w.lastFrames(video)
	if err != nil {
		return "", fmt.Errorf("read the mirrored footage: %w", err)
	}
	// The held video frame that is the mirror's newest (the closest in
	// time of those with the same content).
	start, how := 0, "no mirrored footage: all held frames"
	if lv, ok := last[video]; ok && lv.Data != nil {
		how = "no held frame matches the mirror's newest: held frames after it by time"
		best := time.Duration(-1)
		for i, op := range held {
			f := op.frame
			if f == nil || f.Track != video || len(f.Data) != len(lv.Data) || !bytes.Equal(f.Data, lv.Data) {
				continue
			}
			d := f.Time.Sub(lv.Time).Abs()
			if best < 0 || d < best {
				best, start, w.offset = d, i+1, lv.Time.Sub(f.Time)
			}
		}
		if best >= 0 {
			how = fmt.Sprintf("continues after the mirror's newest frame; clock offset %v", w.offset)
		}
	}
	sw, err := w.store.Stream(w.name)
	if err != nil {
		return "", err
	}
	if tracks != nil {
		if err := sw.SetTracks(tracks); err != nil {
			return "", err
		}
	}
	n := 0
	for _, op := range held[start:] {
		switch {
		case op.tracks != nil:
			if err := sw.SetTracks(op.tracks); err != nil {
				return "", err
			}
		case op.gap != nil:
			sw.MarkGap(op.gap.Cause, op.gap.Start.Add(w.offset))
		case op.frame != nil:
			f := *op.frame
			f.Time = f.Time.Add(w.offset)
			if lf, ok := last[f.Track]; ok && !f.Time.After(lf.Time) {
				continue // the mirror delivered this one
			}
			if _, err := sw.Append(f); err != nil {
				return "", fmt.Errorf("replay a held frame: %w", err)
			}
			n++
		}
	}
	if w.overflow {
		how += "; frames beyond the hold bound were dropped"
	}
	return fmt.Sprintf("%s; %d held frames replayed", how, n), nil
}
