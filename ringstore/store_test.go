package ringstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// testBase is the wall-clock start of test footage.
var testBase = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func h264Tracks(sps byte) []Track {
	return []Track{
		{ID: 0, Codec: CodecH264, ClockRate: 90000, Config: [][]byte{{0x67, sps, 0x1f}, {0x68, 0xce}}},
		{ID: 1, Codec: CodecAAC, ClockRate: 48000, Channels: 2, Config: [][]byte{{0x11, 0x90}}},
	}
}

// frameBytes makes a frame payload that says which stream, track and time it
// belongs to, so a read can check it got exactly those bytes.
func frameBytes(stream string, track uint8, t time.Time, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, byte(len(stream)))
	b = append(b, stream...)
	b = append(b, track)
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	for i := 0; len(b) < size; i++ {
		b = append(b, byte(i)^track)
	}
	return b
}

// checkFrameBytes verifies a payload made by frameBytes.
func checkFrameBytes(stream string, f Frame) error {
	want := frameBytes(stream, f.Track, f.Time, len(f.Data))
	if !bytes.Equal(f.Data, want) {
		return fmt.Errorf("frame %s/%d at %v: payload is not its own (%d bytes, starts %q)", stream, f.Track, f.Time, len(f.Data), f.Data[:min(len(f.Data), 24)])
	}
	return nil
}

// testStore formats a small volume in a temp dir on disk and opens it.
type testEnv struct {
	dir  string
	fopt FormatOptions
	opt  Options
}

func newEnv(t testing.TB, size, slot int64) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{dir: dir, fopt: FormatOptions{Size: size, SlotSize: slot}, opt: Options{CommitInterval: time.Hour}}
	if _, err := Format(context.Background(), dir, e.fopt); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *testEnv) open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), e.dir, e.opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gop appends n seconds of 25 fps video (GOP 1 s) and 50 Hz audio to w,
// starting at start; it returns the last seq.
func gop(t testing.TB, w *StreamWriter, start time.Time, seconds int, size int) uint64 {
	t.Helper()
	var seq uint64
	for i := 0; i < seconds*25; i++ {
		vt := start.Add(time.Duration(i) * 40 * time.Millisecond)
		sz := size
		if i%25 == 0 {
			sz = size * 4
		}
		var err error
		seq, err = w.Append(Frame{Track: 0, Time: vt, Key: i%25 == 0, Data: frameBytes(w.Name(), 0, vt, sz)})
		if err != nil {
			t.Fatalf("append video %d: %v", i, err)
		}
		for a := 0; a < 2; a++ {
			at := vt.Add(time.Duration(a) * 20 * time.Millisecond)
			if seq, err = w.Append(Frame{Track: 1, Time: at, Key: true, Data: frameBytes(w.Name(), 1, at, 64)}); err != nil {
				t.Fatalf("append audio: %v", err)
			}
		}
	}
	return seq
}

// readAll reads a stream's frames in [from, to) and checks every payload.
func readAll(t testing.TB, s *Store, stream string, from, to time.Time) []ReadFrame {
	t.Helper()
	r, err := s.Frames(stream, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []ReadFrame
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := checkFrameBytes(stream, f.Frame); err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func mustMatchRebuild(t testing.TB, s *Store) {
	t.Helper()
	if err := s.checkIndexMatchesRebuild(); err != nil {
		t.Fatal(err)
	}
}

func TestFormatOpenAppendReadRoundTrip(t *testing.T) {
	checkNoLeak(t)
	e := newEnv(t, 16<<20, 1<<20)
	s := e.open(t)
	w, err := s.Stream("cam1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(h264Tracks(1)); err != nil {
		t.Fatal(err)
	}
	seq := gop(t, w, testBase, 5, 2000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Durable() < seq {
		t.Fatalf("durable %d after flush, want >= %d", s.Durable(), seq)
	}
	got := readAll(t, s, "cam1", testBase, testBase.Add(time.Hour))
	if len(got) != 5*25*3 {
		t.Fatalf("read %d frames, want %d", len(got), 5*25*3)
	}
	if got[0].Tracks == nil || got[0].Tracks[0].Config[0][1] != 1 || !got[0].Key {
		t.Fatalf("first frame %+v: want a keyframe with the track table", got[0])
	}
	for _, f := range got[1:] {
		if f.Tracks != nil || f.Gap != nil {
			t.Fatalf("frame at %v: unexpected tracks/gap", f.Time)
		}
	}
	// From the middle of a GOP: start at its keyframe.
	mid := readAll(t, s, "cam1", testBase.Add(2500*time.Millisecond), testBase.Add(3*time.Second))
	if !mid[0].Time.Equal(testBase.Add(2*time.Second)) || !mid[0].Key || mid[0].Tracks == nil {
		t.Fatalf("read from 2.5s starts at %v key=%v, want the keyframe at 2s", mid[0].Time, mid[0].Key)
	}
	if last := mid[len(mid)-1].Time; !last.Before(testBase.Add(3 * time.Second)) {
		t.Fatalf("read to 3s returned a frame at %v", last)
	}
	spans, gaps, err := s.Spans("cam1", testBase.Add(-time.Minute), testBase.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 || !spans[0].Start.Equal(testBase) || len(gaps) != 1 || gaps[0].Cause != GapUnknown {
		t.Fatalf("spans %v gaps %v", spans, gaps)
	}
	mustMatchRebuild(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Append(Frame{Time: testBase.Add(time.Hour)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}

	// Reopen: the footage is there, the next record carries a restart gap.
	s = e.open(t)
	defer s.Close()
	w, _ = s.Stream("cam1")
	gop(t, w, testBase.Add(10*time.Second), 2, 2000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = readAll(t, s, "cam1", testBase, testBase.Add(time.Hour))
	if len(got) != 7*25*3 {
		t.Fatalf("after reopen read %d frames, want %d", len(got), 7*25*3)
	}
	var restart *ReadFrame
	for i := range got {
		if got[i].Gap != nil {
			restart = &got[i]
		}
	}
	if restart == nil || restart.Gap.Cause != GapStoreRestart || !restart.Time.Equal(testBase.Add(10*time.Second)) {
		t.Fatalf("restart gap: %+v", restart)
	}
	spans, gaps, _ = s.Spans("cam1", testBase, testBase.Add(time.Minute))
	if len(spans) != 2 || len(gaps) != 1 || gaps[0].Cause != GapStoreRestart {
		t.Fatalf("after restart spans %v gaps %v", spans, gaps)
	}
	st, _ := s.Streams()
	if len(st) != 1 || st[0].Name != "cam1" || !st[0].First.Equal(testBase) || st[0].Bytes == 0 || len(st[0].Tracks) != 2 {
		t.Fatalf("streams %+v", st)
	}
	mustMatchRebuild(t, s)
}

// errAny in a table means "some error".
var errAny = errors.New("any error")

func TestAppendErrors(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	e.opt.MaxPendingBytes = 10000
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	tests := []struct {
		name string
		f    Frame
		want error
	}{
		{"first", Frame{Track: 0, Time: testBase, Key: true, Data: make([]byte, 6000)}, nil},
		{"older", Frame{Track: 0, Time: testBase.Add(-time.Millisecond), Data: []byte{1}}, ErrNonMonotonic},
		{"other track may be older", Frame{Track: 1, Time: testBase.Add(-time.Millisecond), Data: []byte{1}}, nil},
		{"backlog full", Frame{Track: 0, Time: testBase.Add(time.Second), Data: make([]byte, 6000)}, ErrBackpressure},
		{"same time ok", Frame{Track: 0, Time: testBase, Data: []byte{2}}, nil},
		{"no time", Frame{Track: 2, Data: []byte{2}}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Append(tt.f)
			if tt.want == errAny && err != nil {
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Append: %v, want %v", err, tt.want)
			}
		})
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(Frame{Track: 0, Time: testBase.Add(time.Second), Data: make([]byte, 6000)}); err != nil {
		t.Fatalf("after flush the backlog is free again: %v", err)
	}
	if _, err := s.Stream(""); err == nil {
		t.Fatal("empty stream name accepted")
	}
	if _, err := w.Append(Frame{Time: testBase.Add(2 * time.Second), Data: make([]byte, 1<<20)}); err == nil {
		t.Fatal("frame over a quarter slot accepted")
	}
}

func TestMarkGapAndTrackChange(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	gop(t, w, testBase, 2, 500)
	w.MarkGap(GapCameraOffline, testBase.Add(2*time.Second))
	w.SetTracks(h264Tracks(2))
	gop(t, w, testBase.Add(30*time.Second), 2, 500)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s, "cam", testBase, testBase.Add(time.Minute))
	var changes, gaps int
	for _, f := range got {
		if f.Tracks != nil {
			changes++
		}
		if f.Gap != nil {
			gaps++
			if f.Gap.Cause != GapCameraOffline || !f.Time.Equal(testBase.Add(30*time.Second)) {
				t.Fatalf("gap %+v at %v", f.Gap, f.Time)
			}
		}
	}
	if changes != 2 || gaps != 1 {
		t.Fatalf("%d track tables and %d gaps, want 2 and 1", changes, gaps)
	}
	spans, gs, _ := s.Spans("cam", testBase, testBase.Add(time.Minute))
	if len(spans) != 2 || len(gs) != 1 || gs[0].Cause != GapCameraOffline {
		t.Fatalf("spans %v gaps %v", spans, gs)
	}
	mustMatchRebuild(t, s)
}

func TestCrashRecovery(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	gop(t, w, testBase, 3, 1000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Appended but never committed: lost, and that is allowed.
	gop(t, w, testBase.Add(3*time.Second), 1, 1000)
	s.crash()

	// Durable data written after the last index commit must be recovered:
	// simulate by writing a batch and dropping the index commit.
	s = e.open(t)
	w, _ = s.Stream("cam")
	gop(t, w, testBase.Add(10*time.Second), 2, 1000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.crash()
	s = e.open(t)
	defer s.Close()
	got := readAll(t, s, "cam", testBase, testBase.Add(time.Minute))
	if len(got) != 5*25*3 {
		t.Fatalf("read %d frames after crashes, want %d", len(got), 5*25*3)
	}
	mustMatchRebuild(t, s)
}

func TestRecoveryIndexesDurableUnindexedRecords(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	gop(t, w, testBase, 2, 1000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := s.snapshotIndex(&snap); err != nil {
		t.Fatal(err)
	}
	gop(t, w, testBase.Add(2*time.Second), 2, 1000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.crash()
	// The index as it was before the second batch: as if the power failed
	// between the acknowledgement and the index commit.
	if err := os.WriteFile(filepath.Join(e.dir, "index.db"), snap.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s = e.open(t)
	defer s.Close()
	if got := readAll(t, s, "cam", testBase, testBase.Add(time.Minute)); len(got) != 4*25*3 {
		t.Fatalf("read %d frames, want %d", len(got), 4*25*3)
	}
	mustMatchRebuild(t, s)
}

func TestIdentityMismatch(t *testing.T) {
	a := newEnv(t, 4<<20, 1<<20)
	b := newEnv(t, 4<<20, 1<<20)
	ai, bi := filepath.Join(a.dir, "index.db"), filepath.Join(b.dir, "index.db")
	tests := []struct {
		name string
		opt  Options
		dir  string
		want error
	}{
		{"swapped index", Options{IndexPath: bi}, a.dir, ErrIdentityMismatch},
		{"swapped volume", Options{IndexPath: ai}, b.dir, ErrIdentityMismatch},
		{"no volume", Options{IndexPath: ai}, t.TempDir(), ErrNotFormatted},
		{"no index", Options{IndexPath: filepath.Join(t.TempDir(), "x.db")}, a.dir, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.dir, tt.opt)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Format(context.Background(), a.dir, FormatOptions{Size: 4 << 20, SlotSize: 1 << 20}); err == nil {
		t.Fatal("Format over an existing volume succeeded")
	}
}

func TestCheckFindsFlippedByte(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	gop(t, w, testBase, 4, 1000)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(context.Background(), nil)
	if err != nil || !rep.Healthy() || rep.Records == 0 {
		t.Fatalf("clean check: %+v %v", rep, err)
	}
	s.Close()
	// Flip one payload byte of the record holding second 2.
	var e2 indexEntry
	s = e.open(t)
	s.db.View(func(tx *bolt.Tx) error {
		return streamRange(tx, 0, testBase.Add(2*time.Second).UnixNano(), testBase.Add(3*time.Second).UnixNano(), func(x indexEntry) bool { e2 = x; return false })
	})
	s.Close()
	p := slotPath(e.dir, int(e2.slot))
	raw, _ := os.ReadFile(p)
	raw[e2.offset+int64(e2.length)/2] ^= 0x40
	os.WriteFile(p, raw, 0o600)

	var alarms []Alarm
	e.opt.OnAlarm = func(a Alarm) { alarms = append(alarms, a) }
	s = e.open(t)
	defer s.Close()
	var calls int
	rep, err = s.Check(context.Background(), func(done, total int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Healthy() || len(rep.Problems) != 1 || rep.Problems[0].Offset != e2.offset || calls == 0 || len(alarms) != 1 {
		t.Fatalf("check after flip: %+v (progress calls %d, alarms %v)", rep, calls, alarms)
	}
	// Readers skip the corrupt record as a gap and lose nothing else.
	got := readAll(t, s, "cam", testBase, testBase.Add(time.Minute))
	var gap *Gap
	for _, f := range got {
		if f.Gap != nil {
			gap = f.Gap
		}
	}
	if gap == nil || gap.Cause != GapCorrupt || len(got) != 3*25*3 {
		t.Fatalf("read after flip: %d frames, gap %+v", len(got), gap)
	}
}

func TestRebuildEqualsIndex(t *testing.T) {
	e := newEnv(t, 6<<20, 1<<20)
	s := e.open(t)
	for i := 0; i < 3; i++ {
		w, _ := s.Stream(fmt.Sprintf("cam%d", i))
		w.SetTracks(h264Tracks(byte(i)))
	}
	for sec := 0; sec < 12; sec++ {
		for i := 0; i < 3; i++ {
			w, _ := s.Stream(fmt.Sprintf("cam%d", i))
			gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 3000)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mustMatchRebuild(t, s)
	var before bytes.Buffer
	s.db.View(func(tx *bolt.Tx) error {
		d, err := dumpIndex(tx, s.vol.Slots)
		before.WriteString(d)
		return err
	})
	s.Close()
	os.Remove(filepath.Join(e.dir, "index.db"))
	if err := Rebuild(context.Background(), e.dir, Options{}); err != nil {
		t.Fatal(err)
	}
	s = e.open(t)
	defer s.Close()
	got := readAll(t, s, "cam1", testBase, testBase.Add(time.Hour))
	if len(got) == 0 {
		t.Fatal("nothing readable after rebuild")
	}
	mustMatchRebuild(t, s)
	if !strings.Contains(before.String(), "stream cam2") {
		t.Fatalf("dump lacks streams:\n%s", before.String())
	}
}

// TestWraparoundReadersNeverSeeRecycledBytes races readers against a writer
// that wraps a small ring many times.
func TestWraparoundReadersNeverSeeRecycledBytes(t *testing.T) {
	checkNoLeak(t)
	e := newEnv(t, 4<<20, 1<<20)
	e.opt.CommitInterval = 5 * time.Millisecond
	s := e.open(t)
	defer s.Close()
	const streams = 3
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for i := 0; i < streams; i++ {
					name := fmt.Sprintf("cam%d", i)
					fr, err := s.Frames(name, testBase, testBase.Add(time.Hour))
					if err != nil {
						errs <- err
						return
					}
					for n := 0; n < 200; n++ {
						f, err := fr.Next()
						if err != nil {
							if !errors.Is(err, io.EOF) {
								errs <- err
							}
							break
						}
						if err := checkFrameBytes(name, f.Frame); err != nil {
							errs <- err
							return
						}
					}
					fr.Close()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var pos Position
		for ctx.Err() == nil {
			recs, err := s.ReadAfter(pos, 50)
			if errors.Is(err, ErrEvicted) {
				pos = Position{}
				continue
			}
			if err != nil {
				errs <- err
				return
			}
			for _, r := range recs {
				if !pos.Less(r.Pos) {
					errs <- fmt.Errorf("ReadAfter went backwards: %+v after %+v", r.Pos, pos)
					return
				}
				pos = r.Pos
				for _, f := range r.Frames {
					if err := checkFrameBytes(r.Stream, f); err != nil {
						errs <- err
						return
					}
				}
			}
			if len(recs) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for sec := 0; sec < 40; sec++ {
		for i := 0; i < streams; i++ {
			w, _ := s.Stream(fmt.Sprintf("cam%d", i))
			gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 2500)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, _ := s.Streams()
	if len(st) != streams || !st[0].First.After(testBase) {
		t.Fatalf("after wrapping, retention %+v should have moved past the start", st)
	}
	spans, gaps, _ := s.Spans("cam0", testBase, testBase.Add(time.Hour))
	if len(spans) != 1 || len(gaps) != 1 || gaps[0].Cause != GapEvicted {
		t.Fatalf("spans %v gaps %v, want the evicted gap first", spans, gaps)
	}
	if _, err := s.ReadAfter(Position{Gen: 1, Offset: 0}, 1); !errors.Is(err, ErrEvicted) {
		t.Fatalf("ReadAfter of a recycled position: %v", err)
	}
	mustMatchRebuild(t, s)
}

func TestMaxAge(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	now := testBase
	var mu sync.Mutex
	e.opt.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e.opt.MaxAge = 10 * time.Second
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	for sec := 0; sec < 30; sec++ {
		mu.Lock()
		now = testBase.Add(time.Duration(sec+1) * time.Second)
		mu.Unlock()
		gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 8000)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.Streams()
	if len(st) != 1 || st[0].First.Before(testBase.Add(10*time.Second)) {
		t.Fatalf("retention %+v: footage older than MaxAge is still held", st)
	}
	mustMatchRebuild(t, s)
}

// faultFS fails WriteAt or Datasync on one slot file, once armed.
type faultFS struct {
	vfs.FS
	mu     sync.Mutex
	target string // base name of the slot file to fail
	op     string // "write" or "sync"
	fired  int
}

type faultFile struct {
	vfs.File
	fs   *faultFS
	name string
}

func (f *faultFS) OpenReadWrite(name string) (vfs.File, error) {
	file, err := f.FS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: filepath.Base(name)}, nil
}

func (f *faultFS) fail(name, op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if (name == f.target || f.target == "*") && op == f.op {
		f.fired++
		return fmt.Errorf("injected %s failure on %s", op, name)
	}
	return nil
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.fail(f.name, "write"); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Datasync() error {
	if err := f.fs.fail(f.name, "sync"); err != nil {
		return err
	}
	return f.File.Datasync()
}

func TestSuspectSlot(t *testing.T) {
	for _, op := range []string{"write", "sync"} {
		t.Run(op, func(t *testing.T) {
			e := newEnv(t, 8<<20, 1<<20)
			ffs := &faultFS{FS: vfs.Default}
			e.opt.FS = ffs
			var alarms []Alarm
			e.opt.OnAlarm = func(a Alarm) { alarms = append(alarms, a) }
			s := e.open(t)
			defer s.Close()
			w, _ := s.Stream("cam")
			w.SetTracks(h264Tracks(1))
			gop(t, w, testBase, 2, 1000)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			ffs.mu.Lock()
			ffs.target, ffs.op = "000000.slot", op
			ffs.mu.Unlock()
			seq := gop(t, w, testBase.Add(2*time.Second), 2, 1000)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s.Durable() < seq || ffs.fired != 1 {
				t.Fatalf("durable %d (want %d), faults fired %d", s.Durable(), seq, ffs.fired)
			}
			if len(alarms) != 1 || alarms[0].Kind != op || alarms[0].Slot != 0 {
				t.Fatalf("alarms %+v", alarms)
			}
			st := s.Stats()
			if len(st.SuspectSlots) != 1 || st.SuspectSlots[0] != 0 || st.Healthy() {
				t.Fatalf("stats %+v", st)
			}
			if got := readAll(t, s, "cam", testBase, testBase.Add(time.Minute)); len(got) != 4*25*3 {
				t.Fatalf("read %d frames, want %d", len(got), 4*25*3)
			}
			rep, _ := s.Check(context.Background(), nil)
			if rep.Healthy() {
				t.Fatal("check does not report the suspect slot")
			}
			// The cursor sees every frame once: not the failed copy, and
			// the void record that cancels it.
			var pos Position
			frames, voids := 0, 0
			for n := 0; n < 1000; n++ {
				recs, err := s.ReadAfter(pos, 16)
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) == 0 {
					break
				}
				for _, r := range recs {
					frames += len(r.Frames)
					if r.Kind == KindVoid {
						voids++
					}
					pos = r.Pos
				}
			}
			if frames != 4*25*3 || voids != 1 {
				t.Fatalf("cursor: %d frames, %d void records; want %d and 1", frames, voids, 4*25*3)
			}
			mustMatchRebuild(t, s)
		})
	}
}

func TestStatsAndReadAfterCursor(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	w2, _ := s.Stream("door")
	for sec := 0; sec < 3; sec++ {
		gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 1000)
		gop(t, w2, testBase.Add(time.Duration(sec)*time.Second), 1, 500)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Commits < 3 || st.LastCommit.IsZero() || st.CommitLatency <= 0 || st.CommitLatencyP99 < st.CommitLatency/2 || st.Used == 0 || len(st.Streams) != 2 || !st.Healthy() {
		t.Fatalf("stats %+v", st)
	}
	var pos Position
	var frames, opens int
	for n := 0; n < 100; n++ {
		recs, err := s.ReadAfter(pos, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Kind == KindOpen {
				opens++
			}
			frames += len(r.Frames)
			pos = r.Pos
			if d, err := decodeRecord(r.Raw); err != nil || d.gen != r.Pos.Gen {
				t.Fatalf("raw bytes of %+v: %v", r.Pos, err)
			}
		}
	}
	if frames != 2*3*25*3 || opens != 1 {
		t.Fatalf("cursor saw %d frames and %d open records", frames, opens)
	}
}

func TestEverySlotFailingStopsTheWriter(t *testing.T) {
	checkNoLeak(t)
	e := newEnv(t, 4<<20, 1<<20)
	ffs := &faultFS{FS: vfs.Default}
	e.opt.FS = ffs
	var alarms []Alarm
	e.opt.OnAlarm = func(a Alarm) { alarms = append(alarms, a) }
	s := e.open(t)
	w, _ := s.Stream("cam")
	ffs.mu.Lock()
	ffs.target, ffs.op = "*", "sync"
	ffs.mu.Unlock()
	seq := gop(t, w, testBase, 1, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Flush(ctx)
	if !errors.Is(err, ErrClosed) || s.Durable() >= seq {
		t.Fatalf("Flush with every slot failing: %v (durable %d, seq %d)", err, s.Durable(), seq)
	}
	if len(alarms) < 4 || alarms[len(alarms)-1].Kind != "no-slot" {
		t.Fatalf("alarms %+v", alarms)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close after the writer failed returned nil")
	}
}

func TestRebuildRefusesAnOpenStore(t *testing.T) {
	e := newEnv(t, 4<<20, 1<<20)
	s := e.open(t)
	defer s.Close()
	if err := Rebuild(context.Background(), e.dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Rebuild under an open store: %v", err)
	}
}

// TestLargeRecordsRoundTrip covers records whose payload is written straight
// from the stream's buffer (over directPayload).
func TestLargeRecordsRoundTrip(t *testing.T) {
	e := newEnv(t, 16<<20, 4<<20)
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	for sec := 0; sec < 6; sec++ {
		gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 20000+sec)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, s, "cam", testBase, testBase.Add(time.Minute)); len(got) != 6*25*3 {
		t.Fatalf("read %d frames, want %d", len(got), 6*25*3)
	}
	rep, err := s.Check(context.Background(), nil)
	if err != nil || !rep.Healthy() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	mustMatchRebuild(t, s)
}

// TestFewOpenFiles runs a wrapping ring with at most two idle slot files
// kept open: files are closed and reopened under the writer and readers.
func TestFewOpenFiles(t *testing.T) {
	e := newEnv(t, 6<<20, 1<<20)
	e.opt.knobs.maxOpenFiles = 2
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	for sec := 0; sec < 40; sec++ {
		gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 6000)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sec%10 == 9 {
			readAll(t, s, "cam", testBase, testBase.Add(time.Hour))
		}
	}
	s.filesMu.Lock()
	n := len(s.files)
	s.filesMu.Unlock()
	if n > 2 {
		t.Fatalf("%d slot files open, want at most 2", n)
	}
	if got := readAll(t, s, "cam", testBase, testBase.Add(time.Hour)); len(got) == 0 {
		t.Fatal("nothing readable")
	}
	rep, err := s.Check(context.Background(), nil)
	if err != nil || !rep.Healthy() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	mustMatchRebuild(t, s)
}

func TestSpans(t *testing.T) {
	e := newEnv(t, 16<<20, 1<<20)
	s := e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	at := func(sec float64) time.Time { return testBase.Add(time.Duration(sec * float64(time.Second))) }
	gop(t, w, at(0), 10, 300) // 0 .. 9.96
	gop(t, w, at(13), 7, 300) // a 3 s hole: the same span
	w.MarkGap(GapCameraOffline, at(20))
	gop(t, w, at(40), 10, 300) // 40 .. 49.96, after a marked gap
	gop(t, w, at(60), 10, 300) // a 10 s unmarked hole
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := 980 * time.Millisecond // the last audio frame of each second
	tests := []struct {
		name     string
		from, to float64
		spans    []Span
		gaps     []Gap
	}{
		{"inside", 5, 8, []Span{{at(5), at(7).Add(last)}}, nil},
		{"before all", -10, 25, []Span{{at(0), at(19).Add(last)}},
			[]Gap{{at(-10), at(0), GapUnknown}}},
		{"marked gap", 30, 45, []Span{{at(40), at(44).Add(last)}},
			[]Gap{{at(30), at(40), GapCameraOffline}}},
		{"unmarked hole", 52, 65, []Span{{at(60), at(64).Add(last)}},
			[]Gap{{at(52), at(60), GapUnknown}}},
		{"across", 5, 100, []Span{{at(5), at(19).Add(last)}, {at(40), at(49).Add(last)}, {at(60), at(69).Add(last)}},
			[]Gap{{at(19).Add(last), at(40), GapCameraOffline}, {at(49).Add(last), at(60), GapUnknown}}},
		{"nothing", 200, 300, nil, []Gap{{at(200), at(300), GapUnknown}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spans, gaps, err := s.Spans("cam", at(tt.from), at(tt.to))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(spans) != fmt.Sprint(tt.spans) || fmt.Sprint(gaps) != fmt.Sprint(tt.gaps) {
				t.Fatalf("spans %v\ngaps %v\nwant %v\n     %v", spans, gaps, tt.spans, tt.gaps)
			}
		})
	}
}

// TestRecoveryAtFullHead reopens, several times, a store whose index lost a
// batch that filled the head and spilled into the next slot: the part in
// the head is recovered, and every reopen leaves a healthy store.
func TestRecoveryAtFullHead(t *testing.T) {
	e := newEnv(t, 4<<20, 1<<20)
	s := e.open(t)
	w, _ := s.Stream("cam")
	w.SetTracks(h264Tracks(1))
	sec := 0
	for ; s.Stats().Used < 900<<10; sec++ {
		gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 1, 1500)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var snap bytes.Buffer
	if err := s.snapshotIndex(&snap); err != nil {
		t.Fatal(err)
	}
	// A batch that fills slot 0 and spills into slot 1 (records of about
	// 0.4 of the room left: two fit); then the index is put back as it was
	// before it: slot 0 is the head, its last part unindexed.
	room := int(s.vol.SlotSize - s.w.off)
	gop(t, w, testBase.Add(time.Duration(sec)*time.Second), 4, (room*4/10-3500)/28)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.crash()
	if err := os.WriteFile(filepath.Join(e.dir, "index.db"), snap.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s = e.open(t)
		if i == 0 && s.slots[0].last <= testBase.Add(time.Duration(sec)*time.Second).UnixNano() {
			t.Fatalf("the batch's part in slot 0 was not recovered: slot 0 ends at %v", time.Unix(0, s.slots[0].last))
		}
		rep, err := s.Check(context.Background(), nil)
		if err != nil || !rep.Healthy() {
			t.Fatalf("open %d: check: %v %+v", i, err, rep)
		}
		s.Close()
	}
}

// TestFirstOpenRecordLost: the very first open record never reached the
// disk. The next Open starts the empty head over under a new generation;
// nothing was evicted, and the index equals its rebuild.
func TestFirstOpenRecordLost(t *testing.T) {
	e := newEnv(t, 4<<20, 1<<20)
	s := e.open(t)
	s.crash()
	// Back to the state just before the open record: nothing in slot 0,
	// generation 1 handed out, checkpoint 0.
	p := slotPath(e.dir, 0)
	raw, _ := os.ReadFile(p)
	copy(raw[:4096], make([]byte, 4096))
	os.WriteFile(p, raw, 0o600)
	db, err := bolt.Open(filepath.Join(e.dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := putSlot(tx, 0, slotHdr{baseGen: 1, state: slotHead}, nil); err != nil {
			return err
		}
		return putMeta(tx, 1, 0, 0)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = e.open(t)
	defer s.Close()
	w, _ := s.Stream("cam")
	gop(t, w, testBase, 2, 500)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, gaps, _ := s.Spans("cam", testBase.Add(-time.Minute), testBase.Add(time.Minute))
	if len(gaps) != 1 || gaps[0].Cause != GapUnknown {
		t.Fatalf("gaps %v: nothing was evicted", gaps)
	}
	mustMatchRebuild(t, s)
}

// TestBFramesInDecodingOrder: a camera with B-frames sends I P B B P B B in
// decoding order; presentation times go back and forth, decoding times never
// do. The store takes them all and reads them back in the same order with
// their times and DTS offsets; a frame whose decoding time goes back is
// refused.
func TestBFramesInDecodingOrder(t *testing.T) {
	e := newEnv(t, 8<<20, 1<<20)
	s := e.open(t)
	defer s.Close()
	w, err := s.Stream("cam")
	if err != nil {
		t.Fatal(err)
	}
	const frame = 40 * time.Millisecond
	// Presentation slots in decoding order, and each frame's PTS-DTS.
	order := []struct {
		pts int
		key bool
	}{{0, true}, {3, false}, {1, false}, {2, false}, {6, false}, {4, false}, {5, false}}
	var want []Frame
	for i, o := range order {
		pts := testBase.Add(time.Duration(o.pts)*frame + 2*frame) // +2 frames of reorder delay
		dts := testBase.Add(time.Duration(i) * frame)
		f := Frame{Track: 0, Time: pts, DTSOffset: pts.Sub(dts), Key: o.key, Data: []byte{byte(i)}}
		if _, err := w.Append(f); err != nil {
			t.Fatalf("frame %d (pts slot %d): %v", i, o.pts, err)
		}
		want = append(want, f)
	}
	bad := Frame{Track: 0, Time: testBase.Add(8 * frame), DTSOffset: 4 * frame, Data: []byte{9}} // DTS back to slot 4 < 6
	if _, err := w.Append(bad); !errors.Is(err, ErrNonMonotonic) {
		t.Fatalf("decoding time going back: %v, want ErrNonMonotonic", err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := s.Frames("cam", testBase, testBase.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, wf := range want {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !got.Time.Equal(wf.Time) || got.DTSOffset != wf.DTSOffset || got.Key != wf.Key || !bytes.Equal(got.Data, wf.Data) {
			t.Fatalf("frame %d read back as %+v, want %+v", i, got.Frame, wf)
		}
	}
	if f, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %+v %v", f, err)
	}
}
