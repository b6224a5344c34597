package ringstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs/memfs"
)

// This file recovers a crash state and checks the store's promises:
//  1. Open succeeds.
//  2. Every acknowledged frame that the live store had not evicted reads
//     back byte-exact, with its time, key flag, track and DTS offset.
//  3. Every frame returned is one the workload appended (nothing corrupt,
//     stale or recycled), not evicted before the crash, at most once, in
//     append order per track, with the track table in force and the marked
//     gaps.
//  4. Only the last tick can be lost: everything appended before the last
//     completed Flush was acknowledged.
//  5. The index equals the one rebuilt from the slot files (Check, and for
//     a sample a full Rebuild compared read for read).
//  6. Appending resumes: append, Flush, read back.
// A sample of crash states is also crashed at each mutating operation of
// its own recovery, and each of those states recovered and checked again.

// verify recovers st and checks it; violations are recorded on h.
func (h *crashHarness) verify(st *crashState) {
	defer h.checked.Add(1)
	idxPath := filepath.Join(h.idxDir, fmt.Sprintf("state-%d-%d.db", st.id, st.depth))
	if err := os.WriteFile(idxPath, st.index, 0o600); err != nil {
		h.violate(st, "write index copy: %v", err)
		return
	}
	defer os.Remove(idxPath)
	if st.durable < st.flushed {
		h.violate(st, "durable watermark %d is below %d, the last append before the previous Flush returned: more than one tick would be lost", st.durable, st.flushed)
	}
	fsys := crashSplitFS{vol: st.fs, osDir: h.idxDir}
	if st.depth == 0 && crashSampled(st.id, h.cfg.recoverEvery) {
		h.crashDuringRecovery(st, idxPath)
	}
	ctx := context.Background()
	s, err := Open(ctx, crashVolDir, h.storeOptions(fsys, idxPath))
	if err != nil {
		h.violate(st, "open after crash: %v", err)
		return
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	h.checkFrames(st, s)
	h.checkIndex(st, s)
	h.checkResume(st, s)
	// The first tick's states are few and cheap: always rebuilt.
	if st.tick == 0 || crashSampled(st.id, h.cfg.rebuildEvery) {
		before, err := crashViewOf(s, crashBase(), h.resumeAt().Add(time.Minute))
		if err != nil {
			h.violate(st, "read recovered store: %v", err)
			return
		}
		closed = true
		if err := s.Close(); err != nil {
			h.violate(st, "close recovered store: %v", err)
			return
		}
		h.checkRebuild(st, fsys, before)
	}
}

// crashSampled picks about one state id in every (0: none), scattered so
// that the sample covers every variant and kind of operation (ids run
// through the variants of each operation in turn).
func crashSampled(id, every int) bool {
	if every <= 0 {
		return false
	}
	return (uint64(id)*0x9e3779b97f4a7c15)>>40%uint64(every) == 0
}

// crashDuringRecovery recovers a copy of st with the hook installed and
// checks a crash state at each of the recovery's mutating operations.
func (h *crashHarness) crashDuringRecovery(st *crashState, idxPath string) {
	m := st.fs.CrashClone(memfs.CrashOptions{Data: memfs.DataAll, Dirs: memfs.DirsAll})
	path := filepath.Join(h.idxDir, fmt.Sprintf("state-%d-rec.db", st.id))
	if err := os.WriteFile(path, st.index, 0o600); err != nil {
		h.violate(st, "write index copy: %v", err)
		return
	}
	defer os.Remove(path)
	var subs []*crashState
	var recovering atomic.Bool
	recovering.Store(true)
	m.SetHook(func(op memfs.Op) {
		if !recovering.Load() {
			return
		}
		// By the store's rule no index write transaction is open at a
		// volume operation, so the index file is a committed state.
		idx, err := os.ReadFile(path)
		if err != nil {
			h.violate(st, "copy index during recovery: %v", err)
			return
		}
		for i, v := range []memfs.CrashOptions{{Seed: uint64(op.N)}, {Data: memfs.DataTorn, ZeroLost: true, Seed: uint64(op.N)}} {
			sub := *st
			sub.id, sub.depth, sub.parent = st.id*1000+len(subs)+i, 1, st.id
			sub.op, sub.opts, sub.fs, sub.index = op, v, m.CrashClone(v), idx
			subs = append(subs, &sub)
		}
	})
	s, err := Open(context.Background(), crashVolDir, h.storeOptions(crashSplitFS{vol: m, osDir: h.idxDir}, path))
	recovering.Store(false)
	if err != nil {
		h.violate(st, "open (recovery under crash test): %v", err)
	} else if err := s.Close(); err != nil {
		h.violate(st, "close (recovery under crash test): %v", err)
	}
	for _, sub := range subs {
		h.verify(sub)
	}
}

// crashReadStream returns every frame of a stream the store returns.
func crashReadStream(s *Store, name string, from, to time.Time) ([]ReadFrame, error) {
	r, err := s.Frames(name, from, to)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []ReadFrame
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, f)
		if len(out) > 1<<20 {
			return out, errors.New("more than a million frames: the reader loops")
		}
	}
}

// checkFrames checks invariants 2 to 4 on every stream.
func (h *crashHarness) checkFrames(st *crashState, s *Store) {
	infos, err := s.Streams()
	if err != nil {
		h.violate(st, "streams: %v", err)
		return
	}
	known := map[string]bool{}
	for _, name := range h.w.names {
		known[name] = true
	}
	for _, in := range infos {
		if !known[in.Name] {
			h.violate(st, "unknown stream %q listed", in.Name)
		}
	}
	floors, gone := h.floorsFor(st.tick)
	for si, name := range h.w.names {
		frames, err := crashReadStream(s, name, crashBase(), h.w.last)
		if err != nil {
			h.violate(st, "read %s: %v (after %d frames)", name, err, len(frames))
		}
		seen := map[uint64]bool{}
		h.checkReturned(st, si, frames, seen, gone[si])
		// Every acknowledged frame the live store still held must be here.
		missing := 0
		var first *crashFrame
		for _, f := range h.w.frames {
			if f.ID.Stream != si || f.Tick > st.tick || f.Seq == 0 || f.Seq > st.durable || f.ID.Idx < floors[si] {
				continue
			}
			if !seen[f.ID.Idx] {
				if first == nil {
					first = f
				}
				missing++
			}
		}
		if missing > 0 {
			h.violate(st, "%s: %d acknowledged frames missing, first %d (seq %d, tick %d, floor %d); %d frames returned",
				name, missing, first.ID.Idx, first.Seq, first.Tick, floors[si], len(frames))
		}
	}
}

// checkReturned checks each returned frame of stream si against the
// workload, filling seen with the indexes returned.
func (h *crashHarness) checkReturned(st *crashState, si int, frames []ReadFrame, seen map[uint64]bool, gone uint64) {
	name := h.w.names[si]
	lastIdx := map[uint8]int64{}
	var prev *crashFrame
	for i, rf := range frames {
		id, ok := crashParseID(rf.Data)
		want := h.w.byID[id]
		if !ok || id.Stream != si || want == nil || want.Tick > st.tick {
			h.violate(st, "%s frame %d: not a frame appended to this stream before the crash (%d bytes, time %v)", name, i, len(rf.Data), rf.Time)
			return
		}
		if id.Idx < gone {
			h.violate(st, "%s frame %d (idx %d): evicted before the crash (oldest then was %d), returned again", name, i, id.Idx, gone)
		}
		g := want.Frame
		switch {
		case !bytes.Equal(rf.Data, g.Data):
			h.violate(st, "%s frame %d (idx %d): data differs from what was appended", name, i, id.Idx)
		case !rf.Time.Equal(g.Time) || rf.Key != g.Key || rf.Track != g.Track || rf.DTSOffset != g.DTSOffset:
			h.violate(st, "%s frame %d (idx %d): got time %v key %v track %d dts %v, appended %v %v %d %v",
				name, i, id.Idx, rf.Time, rf.Key, rf.Track, rf.DTSOffset, g.Time, g.Key, g.Track, g.DTSOffset)
		}
		if seen[id.Idx] {
			h.violate(st, "%s frame %d (idx %d): returned twice", name, i, id.Idx)
		}
		seen[id.Idx] = true
		if last, ok := lastIdx[rf.Track]; ok && int64(id.Idx) <= last {
			h.violate(st, "%s frame %d (idx %d): out of order, after idx %d of track %d", name, i, id.Idx, last, rf.Track)
		}
		lastIdx[rf.Track] = int64(id.Idx)
		table := h.w.tables[si][want.TableVer]
		switch {
		case rf.Tracks != nil && !crashSameTracks(rf.Tracks, table):
			h.violate(st, "%s frame %d (idx %d): track table %v, in force was %v", name, i, id.Idx, rf.Tracks, table)
		case rf.Tracks == nil && (prev == nil || prev.TableVer != want.TableVer):
			h.violate(st, "%s frame %d (idx %d): no track table though it is the first or it changed", name, i, id.Idx)
		}
		if prev != nil && prev.ID.Idx+1 == id.Idx && h.gapBefore(want) && (rf.Gap == nil || rf.Gap.Cause != GapCameraOffline) {
			h.violate(st, "%s frame %d (idx %d): marked camera-offline gap before it not reported (gap %+v)", name, i, id.Idx, rf.Gap)
		}
		prev = want
	}
}

// gapBefore reports whether the workload marked a gap right before f.
func (h *crashHarness) gapBefore(f *crashFrame) bool {
	p := h.w.ticks[f.Tick][f.ID.Stream]
	return p.Gap && p.Frames[0] == f
}

func crashSameTracks(a, b []Track) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Codec != y.Codec || x.ClockRate != y.ClockRate || x.Channels != y.Channels || len(x.Config) != len(y.Config) {
			return false
		}
		for j := range x.Config {
			if !bytes.Equal(x.Config[j], y.Config[j]) {
				return false
			}
		}
	}
	return true
}

// checkIndex runs fsck on the recovered store: every record's CRC, index
// against data.
func (h *crashHarness) checkIndex(st *crashState, s *Store) {
	rep, err := s.Check(context.Background(), nil)
	if err != nil {
		h.violate(st, "check: %v", err)
		return
	}
	var problems []Problem
	for _, p := range rep.Problems {
		// A slot sealed after an injected I/O error is reported, rightly.
		if h.cfg.faults != nil && strings.HasPrefix(p.What, "slot is suspect") {
			continue
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		h.violate(st, "check after recovery (%d slots, %d records): %v", rep.Slots, rep.Records, problems)
	}
}

// resumeAt is the time of the frames appended after a recovery: after the
// workload, and close to it (reads cost one index seek per 64 s).
func (h *crashHarness) resumeAt() time.Time { return h.w.last.Add(time.Minute) }

// checkResume appends one keyframe per stream after the recovery, flushes,
// and reads it back.
func (h *crashHarness) checkResume(st *crashState, s *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := h.resumeAt()
	want := make([]Frame, len(h.w.names))
	for si, name := range h.w.names {
		sw, err := s.Stream(name)
		if err != nil {
			h.violate(st, "resume: stream %s: %v", name, err)
			return
		}
		tables := h.w.tables[si]
		if err := sw.SetTracks(tables[len(tables)-1]); err != nil {
			h.violate(st, "resume: set tracks %s: %v", name, err)
			return
		}
		want[si] = Frame{Track: 0, Time: at, Key: true, Data: crashFrameData(crashFrameID{Stream: si, Idx: 1 << 40}, 0, true, true, 3000)}
		if _, err := sw.Append(want[si]); err != nil {
			h.violate(st, "resume: append %s: %v", name, err)
			return
		}
	}
	if err := s.Flush(ctx); err != nil {
		h.violate(st, "resume: flush: %v", err)
		return
	}
	for si, name := range h.w.names {
		got, err := crashReadStream(s, name, at, at.Add(time.Second))
		if err != nil || len(got) != 1 || !bytes.Equal(got[0].Data, want[si].Data) || !got[0].Time.Equal(at) {
			h.violate(st, "resume: %s: read back %d frames (err %v), want the one appended", name, len(got), err)
		}
	}
}

// crashView is what a store answers about its content, for comparing a
// recovered index with a rebuilt one.
type crashView struct {
	Streams []StreamInfo
	Frames  map[string][]string
	Spans   map[string][]string // spans, then gaps
	Records []string            // frames and gap records of the log, in order
}

// crashViewOf reads everything s answers about footage within [from, to).
func crashViewOf(s *Store, from, to time.Time) (*crashView, error) {
	v := &crashView{Frames: map[string][]string{}, Spans: map[string][]string{}}
	var err error
	if v.Streams, err = s.Streams(); err != nil {
		return nil, err
	}
	for _, in := range v.Streams {
		fs, err := crashReadStream(s, in.Name, from, to)
		if err != nil {
			return nil, fmt.Errorf("frames of %s: %w", in.Name, err)
		}
		for _, f := range fs {
			id, _ := crashParseID(f.Data)
			v.Frames[in.Name] = append(v.Frames[in.Name], fmt.Sprintf("%d/%d %d %v gap=%v tracks=%d", id.Idx, f.Track, f.Time.UnixNano(), f.Key, f.Gap, len(f.Tracks)))
		}
		spans, gaps, err := s.Spans(in.Name, from, to)
		if err != nil {
			return nil, fmt.Errorf("spans of %s: %w", in.Name, err)
		}
		for _, sp := range spans {
			v.Spans[in.Name] = append(v.Spans[in.Name], fmt.Sprintf("span %s..%s", sp.Start.Format(time.StampMicro), sp.End.Format(time.StampMicro)))
		}
		for _, g := range gaps {
			v.Spans[in.Name] = append(v.Spans[in.Name], fmt.Sprintf("gap %s..%s %s", g.Start.Format(time.StampMicro), g.End.Format(time.StampMicro), g.Cause))
		}
	}
	var pos Position
	for {
		recs, err := s.ReadAfter(pos, 256)
		if err != nil {
			return nil, fmt.Errorf("read after %+v: %w", pos, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Kind != KindOpen {
				v.Records = append(v.Records, fmt.Sprintf("%+v %s %s %d %v", r.Pos, r.Stream, r.Kind, len(r.Frames), r.Gap))
			}
			pos = r.Pos
		}
		if len(v.Records) > 1<<20 {
			return nil, errors.New("ReadAfter loops")
		}
	}
	return v, nil
}

// checkRebuild rebuilds the index from the slot files of the closed
// recovered store and compares what both answer.
func (h *crashHarness) checkRebuild(st *crashState, fsys crashSplitFS, before *crashView) {
	path := filepath.Join(h.idxDir, fmt.Sprintf("state-%d-%d-rebuilt.db", st.id, st.depth))
	defer os.Remove(path)
	ctx := context.Background()
	opts := h.storeOptions(fsys, path)
	if err := Rebuild(ctx, crashVolDir, opts); err != nil {
		h.violate(st, "rebuild: %v", err)
		return
	}
	s, err := Open(ctx, crashVolDir, opts)
	if err != nil {
		h.violate(st, "open rebuilt index: %v", err)
		return
	}
	defer s.Close()
	after, err := crashViewOf(s, crashBase(), h.resumeAt().Add(time.Minute))
	if err != nil {
		h.violate(st, "read rebuilt store: %v", err)
		return
	}
	if d := crashDiffViews(before, after); d != "" {
		h.violate(st, "index differs from the one rebuilt from the slots: %s", d)
	}
}

// crashDiffViews describes the first difference between two views.
func crashDiffViews(a, b *crashView) string {
	if !reflect.DeepEqual(a.Streams, b.Streams) {
		if len(a.Streams) != len(b.Streams) {
			return fmt.Sprintf("streams: %d vs %d", len(a.Streams), len(b.Streams))
		}
		for i := range a.Streams {
			x, y := a.Streams[i], b.Streams[i]
			var d []string
			if x.Name != y.Name {
				d = append(d, fmt.Sprintf("name %s vs %s", x.Name, y.Name))
			}
			if !x.First.Equal(y.First) {
				d = append(d, fmt.Sprintf("first %s vs %s", x.First.Format(time.StampMicro), y.First.Format(time.StampMicro)))
			}
			if !x.Last.Equal(y.Last) {
				d = append(d, fmt.Sprintf("last %s vs %s", x.Last.Format(time.StampMicro), y.Last.Format(time.StampMicro)))
			}
			if x.Bytes != y.Bytes {
				d = append(d, fmt.Sprintf("bytes %d vs %d", x.Bytes, y.Bytes))
			}
			if !crashSameTracks(x.Tracks, y.Tracks) {
				d = append(d, fmt.Sprintf("tracks %v vs %v", x.Tracks, y.Tracks))
			}
			if len(d) > 0 {
				return fmt.Sprintf("stream %s info (recovered vs rebuilt): %s", x.Name, strings.Join(d, "; "))
			}
		}
	}
	for name, fa := range a.Frames {
		fb := b.Frames[name]
		for i := range max(len(fa), len(fb)) {
			if i >= len(fa) || i >= len(fb) || fa[i] != fb[i] {
				return fmt.Sprintf("%s frame %d: %v vs rebuilt %v (%d vs %d frames)", name, i, crashAt(fa, i), crashAt(fb, i), len(fa), len(fb))
			}
		}
	}
	for name, sa := range a.Spans {
		sb := b.Spans[name]
		for i := range max(len(sa), len(sb)) {
			if i >= len(sa) || i >= len(sb) || sa[i] != sb[i] {
				return fmt.Sprintf("%s spans and gaps, item %d: %s vs rebuilt %s (%d vs %d items)", name, i, crashAt(sa, i), crashAt(sb, i), len(sa), len(sb))
			}
		}
	}
	for i := range max(len(a.Records), len(b.Records)) {
		if i >= len(a.Records) || i >= len(b.Records) || a.Records[i] != b.Records[i] {
			return fmt.Sprintf("log record %d: %v vs rebuilt %v", i, crashAt(a.Records, i), crashAt(b.Records, i))
		}
	}
	return ""
}

func crashAt(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}
