package ringstore

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs"
	"github.com/nvrfw/nvr/ringstore/vfs/faultfs"
	"github.com/nvrfw/nvr/ringstore/vfs/memfs"
)

// The crash harness runs a deterministic workload against a store on
// memfs and, at mutating file-system operations, takes crash states: what a
// power cut at that instant could leave (a memfs CrashClone variant), the
// index as committed then (snapshotIndex into a fresh file), and which
// appends were acknowledged (seq <= Durable()). Each crash state is then
// recovered and checked (crashcheck_test.go). bbolt cannot run on memfs, so
// the index lives in a real directory; crashSplitFS routes it there.
//
// Running it:
//
//	go test ./ringstore -run 'TestCrash|TestKill' -v           # ~2,400 crash states, 50 kills
//	go test ./ringstore -run 'TestCrash|TestKill' -v -args -long  # every variant at every op, 200 kills
//	FUZZTIME=10m FUZZPKGS=./ringstore make fuzz                 # FuzzCrash: seed, crash point, variant
//
// A violation names the crash state: workload tick, the memfs operation
// (its number N replays: the workload is deterministic), the variant and
// seed, and the durable watermark.

var crashLong = flag.Bool("long", false, "crash tests: take every crash variant at every operation, crash during more recoveries")

// crashVolDir is the volume directory inside memfs.
const crashVolDir = "/vol"

// crashConfig is one harness run.
type crashConfig struct {
	spec     crashWorkloadSpec
	slots    int
	slotSize int64
	// every takes crash states at every nth mutating operation (1: each).
	every int
	// variants returns the crash variants taken at operation n.
	variants func(n int) []memfs.CrashOptions
	// recoverEvery also crashes at every operation of the recovery of
	// about one crash state in recoverEvery (0: never).
	recoverEvery int
	// rebuildEvery compares the recovered index with one rebuilt from the
	// slot files for about one crash state in rebuildEvery, and for every
	// state of the first tick (0: only those).
	rebuildEvery int
	// stopAtOp, when > 0, takes one crash state at exactly that operation
	// and stops the workload there (FuzzCrash).
	stopAtOp int
	// skipGenCheck and skipDirSync set the store's test switches
	// (export_test.go) that inject bugs.
	skipGenCheck, skipDirSync bool
	// workers verify crash states in parallel; 0: GOMAXPROCS.
	workers int
	// opLog, when set, receives every mutating operation of the workload.
	opLog *[]string
	// faults, when set, arms I/O errors on the workload's file system
	// (faultfs over memfs); recoveries run without them.
	faults func(*faultfs.FS)
}

// crashDefaultVariants: at every operation the harshest state (no unsynced
// data, only synced directory entries), plus two other variants in rotation.
func crashDefaultVariants(n int) []memfs.CrashOptions {
	seed := uint64(n)
	rot := []memfs.CrashOptions{
		{Data: memfs.DataTorn, Seed: seed},
		{Data: memfs.DataRandom, ZeroLost: true, Seed: seed},
		{Data: memfs.DataAll, Dirs: memfs.DirsAll, Seed: seed},
		{Data: memfs.DataRandom, Dirs: memfs.DirsRandom, Seed: seed},
		{Data: memfs.DataNone, ZeroLost: true, Seed: seed},
		{Data: memfs.DataTorn, ZeroLost: true, Seed: seed},
	}
	return []memfs.CrashOptions{{Seed: seed}, rot[n%len(rot)], rot[(n+3)%len(rot)]}
}

// crashAllVariants: every variant, random ones with two seeds.
func crashAllVariants(n int) []memfs.CrashOptions {
	seed := uint64(n)
	return []memfs.CrashOptions{
		{Seed: seed},
		{Data: memfs.DataNone, ZeroLost: true, Seed: seed},
		{Data: memfs.DataTorn, Seed: seed},
		{Data: memfs.DataTorn, ZeroLost: true, Seed: seed},
		{Data: memfs.DataRandom, Seed: seed},
		{Data: memfs.DataRandom, ZeroLost: true, Dirs: memfs.DirsRandom, Seed: seed + 1<<32},
		{Data: memfs.DataAll, Dirs: memfs.DirsAll, Seed: seed},
	}
}

// crashState is one simulated power cut, ready to be recovered.
type crashState struct {
	id      int
	op      memfs.Op
	opts    memfs.CrashOptions
	fs      *memfs.FS
	index   []byte // the index file as committed at the crash
	durable uint64 // every seq <= durable was acknowledged before the crash
	flushed uint64 // every seq <= flushed was appended before the last completed Flush
	tick    int    // the workload tick during which the crash happened
	depth   int    // 0: crash of the workload; 1: crash during a recovery
	parent  int    // depth 1: the crash state being recovered
}

func (st *crashState) String() string {
	s := fmt.Sprintf("state %d (tick %d, op %v, %v, durable %d)", st.id, st.tick, st.op, st.opts, st.durable)
	if st.depth > 0 {
		s += fmt.Sprintf(" during recovery of state %d", st.parent)
	}
	return s
}

// crashHarness runs one crashConfig.
type crashHarness struct {
	cfg    crashConfig
	w      *crashWorkload
	idxDir string
	// liveIndex is the workload store's index file.
	liveIndex string

	mu          sync.Mutex
	store       *Store
	tick        int
	flushed     uint64
	pending     []*crashState
	floors      [][]uint64 // per tick, per stream: the oldest frame index readable after the tick
	violations  []string   // the first 100
	nviolations int
	kinds       map[string]int // all violations by crashViolationKind
	nextID      int
	stopped     bool

	checked atomic.Int64 // crash states verified
	work    chan *crashState
	wg      sync.WaitGroup
}

// crashSplitFS is the store's FS in the harness: the index directory on the
// operating system (bbolt needs a real file), everything else on memfs.
type crashSplitFS struct {
	vol   vfs.FS
	osDir string
}

func (f crashSplitFS) pick(name string) vfs.FS {
	if strings.HasPrefix(filepath.Clean(name), f.osDir+string(filepath.Separator)) {
		return vfs.Default
	}
	return f.vol
}

func (f crashSplitFS) Create(name string) (vfs.File, error) { return f.pick(name).Create(name) }
func (f crashSplitFS) Open(name string) (vfs.File, error)   { return f.pick(name).Open(name) }
func (f crashSplitFS) OpenReadWrite(name string) (vfs.File, error) {
	return f.pick(name).OpenReadWrite(name)
}
func (f crashSplitFS) Rename(o, n string) error          { return f.pick(o).Rename(o, n) }
func (f crashSplitFS) Remove(name string) error          { return f.pick(name).Remove(name) }
func (f crashSplitFS) MkdirAll(dir string) error         { return f.pick(dir).MkdirAll(dir) }
func (f crashSplitFS) List(dir string) ([]string, error) { return f.pick(dir).List(dir) }
func (f crashSplitFS) Exists(name string) (bool, error)  { return f.pick(name).Exists(name) }
func (f crashSplitFS) SyncDir(dir string) error          { return f.pick(dir).SyncDir(dir) }

// crashIndexDir returns a directory for the crash states' index files: on
// tmpfs when there is one (bbolt fsyncs every commit), else under t.TempDir.
func crashIndexDir(tb testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "nvr-crash-")
		if err == nil {
			tb.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return tb.TempDir()
}

// crashResult is what a harness run found.
type crashResult struct {
	// violations are the first 100 broken invariants, then a line counting
	// the rest; the caller decides whether they are expected.
	violations []string
	// kinds counts all violations by crashViolationKind.
	kinds map[string]int
	// checked is the number of crash states recovered and checked.
	checked int64
}

// runCrashHarness runs the workload and checks every crash state it takes.
func runCrashHarness(tb testing.TB, cfg crashConfig) crashResult {
	tb.Helper()
	if cfg.workers <= 0 {
		cfg.workers = runtime.GOMAXPROCS(0)
	}
	if cfg.every <= 0 {
		cfg.every = 1
	}
	if cfg.variants == nil {
		cfg.variants = crashDefaultVariants
	}
	baseline := runtime.NumGoroutine()
	h := &crashHarness{kinds: map[string]int{}, cfg: cfg, w: planCrashWorkload(cfg.spec), idxDir: crashIndexDir(tb)}
	h.work = make(chan *crashState, 2*cfg.workers)
	for range cfg.workers {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for st := range h.work {
				h.verify(st)
			}
		}()
	}
	err := h.run()
	h.dispatch(math.MaxInt) // everything left, a failed tick's states included
	close(h.work)
	h.wg.Wait()
	if err != nil {
		h.violate(nil, "workload: %v", err)
	}
	// Every store the harness opened is closed: none may leave a goroutine.
	if n := waitGoroutines(baseline, 5*time.Second); n > baseline {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		h.violate(nil, "%d goroutines leaked by closed stores; first stacks:\n%s", n-baseline, buf[:min(len(buf), 4000)])
	}
	if n := h.nviolations - len(h.violations); n > 0 {
		h.violations = append(h.violations, fmt.Sprintf("... %d more violations not kept", n))
	}
	return crashResult{violations: h.violations, kinds: h.kinds, checked: h.checked.Load()}
}

// waitGoroutines waits up to limit for the goroutine count to fall to
// want, and returns the count.
func waitGoroutines(want int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crashViolationKind classifies a violation message, so that the tests that
// inject a bug can ask for the violations that bug must cause.
func crashViolationKind(msg string) string {
	kinds := []struct{ kind, substr string }{
		{"open", "open after crash"},
		{"lost", "acknowledged frames missing"},
		{"stale", "not a frame appended"},
		{"stale", "evicted before the crash"},
		{"stale", "returned twice"},
		{"stale", "out of order"},
		{"corrupt", "data differs"},
		{"corrupt", "got time"},
		{"tracks", "track table"},
		{"gap", "gap before it not reported"},
		{"durable", "durable watermark"},
		{"rebuild", "rebuil"},
		{"check", "check"},
		{"resume", "resume"},
	}
	for _, k := range kinds {
		if strings.Contains(msg, k.substr) {
			return k.kind
		}
	}
	return "other"
}

// violate records a broken invariant.
func (h *crashHarness) violate(st *crashState, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if st != nil {
		msg = st.String() + ": " + msg
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kinds[crashViolationKind(msg)]++
	h.nviolations++
	if len(h.violations) < 100 {
		h.violations = append(h.violations, msg)
	}
}

// run formats the volume, opens the store with the hook installed, and
// plays the workload.
func (h *crashHarness) run() error {
	ctx := context.Background()
	m := memfs.New()
	fsys := crashSplitFS{vol: m, osDir: h.idxDir}
	if h.cfg.faults != nil {
		ffs := faultfs.New(m)
		fsys.vol = ffs
		// A failed sync leaves the written data in an unknown state: the
		// kernel may drop the dirty pages, so a retry cannot persist them.
		ffs.SetOnFault(func(op faultfs.Op, err error) {
			if err != nil && (op.Kind == faultfs.OpDatasync || op.Kind == faultfs.OpSync) {
				m.DropUnsynced(op.Path)
			}
		})
		h.cfg.faults(ffs)
	}
	if err := m.MkdirAll(crashVolDir); err != nil {
		return err
	}
	if err := m.SyncDir("/"); err != nil {
		return err
	}
	indexPath := filepath.Join(h.idxDir, "live.db")
	fo := FormatOptions{FS: fsys, Size: int64(h.cfg.slots) * h.cfg.slotSize, SlotSize: h.cfg.slotSize, IndexPath: indexPath}
	if h.cfg.skipDirSync {
		fo = fo.withSkipDirSync()
	}
	if _, err := Format(ctx, crashVolDir, fo); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	// Crash states are taken from the first Open on (its recovery of the
	// fresh volume included).
	h.liveIndex = indexPath
	m.SetHook(func(op memfs.Op) { h.onOp(m, op) })
	s, err := Open(ctx, crashVolDir, h.storeOptions(fsys, indexPath))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	h.mu.Lock()
	h.store = s
	h.mu.Unlock()
	err = h.play(ctx, s)
	if cerr := s.Close(); err == nil && cerr != nil && !h.isStopped() {
		err = fmt.Errorf("close: %w", cerr)
	}
	m.SetHook(nil)
	return err
}

func (h *crashHarness) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// storeOptions are the options every store of the harness opens with.
func (h *crashHarness) storeOptions(fsys vfs.FS, indexPath string) Options {
	now := crashBase()
	o := Options{
		FS: fsys, IndexPath: indexPath,
		CommitInterval: time.Hour, // commits only on Flush: deterministic
		Now:            func() time.Time { return now },
	}
	if h.cfg.skipGenCheck {
		o = o.withSkipGenCheck()
	}
	return o
}

// onOp runs before every mutating operation of the workload's memfs, on
// the goroutine making it (the store's writer, or Close).
func (h *crashHarness) onOp(m *memfs.FS, op memfs.Op) {
	h.mu.Lock()
	s, stopped := h.store, h.stopped
	if h.cfg.opLog != nil {
		*h.cfg.opLog = append(*h.cfg.opLog, op.String())
	}
	h.mu.Unlock()
	if stopped {
		return
	}
	if h.cfg.stopAtOp > 0 {
		if op.N != h.cfg.stopAtOp {
			return
		}
	} else if op.N%h.cfg.every != 0 {
		return
	}
	var idx bytes.Buffer
	var durable uint64
	if s == nil {
		// Inside the first Open: no store to ask yet; by the store's rule
		// no index write transaction is open now, so the file is committed.
		b, err := os.ReadFile(h.liveIndex)
		if err != nil {
			h.violate(nil, "copy index at %v: %v", op, err)
			return
		}
		idx.Write(b)
	} else {
		if err := s.snapshotIndex(&idx); err != nil {
			h.violate(nil, "snapshot index at %v: %v", op, err)
			return
		}
		durable = s.Durable()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.stopAtOp > 0 {
		h.stopped = true // the workload stops after this tick
	}
	for _, v := range h.cfg.variants(op.N) {
		h.nextID++
		h.pending = append(h.pending, &crashState{
			id: h.nextID, op: op, opts: v, fs: m.CrashClone(v), index: idx.Bytes(),
			durable: durable, flushed: h.flushed, tick: h.tick,
		})
	}
}

// play appends the workload tick by tick, flushing after each, and
// dispatches the crash states of each finished tick to the verifiers.
func (h *crashHarness) play(ctx context.Context, s *Store) error {
	writers := make([]*StreamWriter, len(h.w.names))
	for i, name := range h.w.names {
		sw, err := s.Stream(name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		writers[i] = sw
	}
	for tick, plans := range h.w.ticks {
		h.mu.Lock()
		h.tick = tick
		h.mu.Unlock()
		var last uint64
		for _, p := range plans {
			sw := writers[p.Stream]
			if p.Gap {
				sw.MarkGap(GapCameraOffline, p.GapAt)
			}
			if p.NewTable {
				if err := sw.SetTracks(h.w.tables[p.Stream][p.Frames[0].TableVer]); err != nil {
					return h.stopErr(fmt.Errorf("tick %d: set tracks of %s: %w", tick, sw.Name(), err))
				}
			}
			for _, f := range p.Frames {
				seq, err := sw.Append(f.Frame)
				if err != nil {
					return h.stopErr(fmt.Errorf("tick %d: append %v: %w", tick, f.ID, err))
				}
				f.Seq, last = seq, seq
			}
		}
		if err := s.Flush(ctx); err != nil {
			return h.stopErr(fmt.Errorf("tick %d: flush: %w", tick, err))
		}
		if d := s.Durable(); d < last {
			return fmt.Errorf("tick %d: Flush returned with durable %d below the last append %d", tick, d, last)
		}
		floors, err := h.readFloors(s)
		if err != nil {
			return fmt.Errorf("tick %d: %w", tick, err)
		}
		h.mu.Lock()
		h.flushed = last
		h.floors = append(h.floors, floors)
		h.mu.Unlock()
		h.dispatch(tick + 1)
		if h.isStopped() {
			return nil
		}
	}
	return nil
}

// stopErr hides the workload's failure after a deliberate stop (FuzzCrash).
func (h *crashHarness) stopErr(err error) error {
	if h.isStopped() {
		return nil
	}
	return err
}

// readFloors returns, per stream, the index of the oldest frame the live
// store still returns: anything acknowledged from there on must survive.
func (h *crashHarness) readFloors(s *Store) ([]uint64, error) {
	floors := make([]uint64, len(h.w.names))
	for i, name := range h.w.names {
		r, err := s.Frames(name, crashBase(), h.w.last)
		if err != nil {
			return nil, fmt.Errorf("read floor of %s: %w", name, err)
		}
		f, err := r.Next()
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("read floor of %s: first frame: %w", name, err)
		}
		id, ok := crashParseID(f.Data)
		if !ok {
			return nil, fmt.Errorf("read floor of %s: first frame is not a workload frame", name)
		}
		floors[i] = id.Idx
	}
	return floors, nil
}

// dispatch sends the crash states of ticks before n to the verifiers.
func (h *crashHarness) dispatch(n int) {
	h.mu.Lock()
	var ready, keep []*crashState
	for _, st := range h.pending {
		if st.tick < n {
			ready = append(ready, st)
		} else {
			keep = append(keep, st)
		}
	}
	h.pending = keep
	h.mu.Unlock()
	for _, st := range ready {
		h.work <- st
	}
}

// floorsFor returns the floors that bind a crash during tick: after that
// tick (acknowledged frames from there on must survive), and after the tick
// before (frames below it were evicted before the crash and must stay gone).
func (h *crashHarness) floorsFor(tick int) (keep, gone []uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	zero := make([]uint64, len(h.w.names))
	if len(h.floors) == 0 {
		return zero, zero
	}
	keep, gone = h.floors[min(tick, len(h.floors)-1)], zero
	if tick > 0 {
		gone = h.floors[min(tick-1, len(h.floors)-1)]
	}
	return keep, gone
}

func crashSpec(seed uint64) crashConfig {
	return crashConfig{
		spec:     crashWorkloadSpec{Seed: seed, Streams: 4, Ticks: 360},
		slots:    3, // the ring wraps about every 145 ticks
		slotSize: MinSlotSize,
	}
}

func reportCrashViolations(t *testing.T, res crashResult) {
	t.Helper()
	if len(res.violations) > 0 {
		t.Errorf("violations by kind: %v", res.kinds)
	}
	for i, v := range res.violations {
		if i == 20 {
			t.Errorf("... and %d more violations", len(res.violations)-i)
			break
		}
		t.Error(v)
	}
}

// TestCrashHarness is the crash harness's main run.
func TestCrashHarness(t *testing.T) {
	cfg := crashSpec(1)
	cfg.every = 1
	cfg.recoverEvery = 40
	cfg.rebuildEvery = 12
	if *crashLong {
		cfg.variants = crashAllVariants
		cfg.recoverEvery = 3
		cfg.rebuildEvery = 1
	}
	start := time.Now()
	res := runCrashHarness(t, cfg)
	w := planCrashWorkload(cfg.spec)
	t.Logf("checked %d crash states in %v (workload: %d frames, %d bytes, %d ticks, volume %d x %d bytes)",
		res.checked, time.Since(start).Round(time.Millisecond), len(w.frames), w.bytes(), cfg.spec.Ticks, cfg.slots, cfg.slotSize)
	if res.checked < 1000 {
		t.Errorf("only %d crash states checked; the harness is not exercising the store", res.checked)
	}
	reportCrashViolations(t, res)
}

// TestCrashWorkloadDeterministic: the same seed makes the same file-system
// operations, so a crash point found by FuzzCrash (an operation number)
// replays.
func TestCrashWorkloadDeterministic(t *testing.T) {
	var logs [2][]string
	for i := range logs {
		cfg := crashSpec(5)
		cfg.spec.Ticks = 160 // past the first recycling
		cfg.every = math.MaxInt
		cfg.opLog = &logs[i]
		if res := runCrashHarness(t, cfg); len(res.violations) > 0 {
			t.Fatalf("run %d: %v", i, res.violations)
		}
	}
	if len(logs[0]) < 300 {
		t.Fatalf("only %d operations: the workload did not run", len(logs[0]))
	}
	for i := range max(len(logs[0]), len(logs[1])) {
		if crashAt(logs[0], i) != crashAt(logs[1], i) {
			t.Fatalf("operation %d differs between two runs of the same seed: %s vs %s", i, crashAt(logs[0], i), crashAt(logs[1], i))
		}
	}
	t.Logf("%d operations, identical in both runs", len(logs[0]))
}

// expectCaught fails unless the run found violations of kind, the one the
// injected bug must cause (other kinds may come from real store bugs and
// do not count).
func expectCaught(t *testing.T, res crashResult, bug, kind string) {
	t.Helper()
	t.Logf("%s: %d crash states checked, violations by kind %v", bug, res.checked, res.kinds)
	if res.kinds[kind] == 0 {
		t.Fatalf("the harness found no %q violation with %s", kind, bug)
	}
	shown := 0
	for _, v := range res.violations {
		if crashViolationKind(v) == kind && shown < 2 {
			t.Logf("caught: %s", v)
			shown++
		}
	}
}

// TestCrashHarnessCatchesSkipGenCheck: with generation checks disabled,
// stale records of a slot's previous use come back; the harness must say so.
func TestCrashHarnessCatchesSkipGenCheck(t *testing.T) {
	cfg := crashSpec(2)
	cfg.spec.Ticks = 240 // the ring wraps at about tick 145
	// The harshest variant at every operation: at a slot's Datasync the
	// unsynced new batch reverts to the bytes of the slot's previous use.
	cfg.variants = func(n int) []memfs.CrashOptions { return []memfs.CrashOptions{{Seed: uint64(n)}} }
	cfg.skipGenCheck = true
	expectCaught(t, runCrashHarness(t, cfg), "generation checks skipped", "stale")
}

// TestCrashHarnessCatchesSkipDirSync: a Format that never syncs its
// directories loses the volume in a power cut; the harness must say so.
func TestCrashHarnessCatchesSkipDirSync(t *testing.T) {
	cfg := crashSpec(3)
	cfg.spec.Ticks = 20
	cfg.skipDirSync = true
	expectCaught(t, runCrashHarness(t, cfg), "directory syncs skipped", "open")
}

// TestCrashHarnessCatchesDroppedFlush: a store whose slot Datasyncs do not
// reach the disk (here: a disk that ignores them) acknowledges frames a power
// cut loses; the harness must say so.
func TestCrashHarnessCatchesDroppedFlush(t *testing.T) {
	cfg := crashSpec(6)
	cfg.spec.Ticks = 40
	cfg.variants = func(n int) []memfs.CrashOptions { return []memfs.CrashOptions{{Seed: uint64(n)}} }
	cfg.faults = func(f *faultfs.FS) { f.Drop(faultfs.All(faultfs.Kinds(faultfs.OpDatasync), faultfs.Glob("*.slot"))) }
	expectCaught(t, runCrashHarness(t, cfg), "slot Datasyncs dropped", "lost")
}

// TestCrashHarnessWithSyncErrors: slot Datasyncs fail now and then (EIO);
// the store must seal the slot, re-write the batch in the next one and never
// acknowledge from the failed slot, whatever crash follows.
func TestCrashHarnessWithSyncErrors(t *testing.T) {
	cfg := crashSpec(4)
	cfg.spec.Ticks = 200
	cfg.slots = 5 // three of them end up sealed
	cfg.every = 3
	var ffs *faultfs.FS
	cfg.faults = func(f *faultfs.FS) {
		slotSync := faultfs.All(faultfs.Kinds(faultfs.OpDatasync), faultfs.Glob("*.slot"))
		for _, n := range []int{25, 70, 120} {
			f.FailNth(n, slotSync, syscall.EIO)
		}
		ffs = f
	}
	res := runCrashHarness(t, cfg)
	t.Logf("checked %d crash states with slot Datasync failures", res.checked)
	reportCrashViolations(t, res)
	if got := ffs.Injected(); got != 3 {
		t.Errorf("%d Datasync failures injected, want 3: the workload did not reach them", got)
	}
}

// FuzzCrash chooses the workload seed, the operation to crash at and the
// crash variant; the harness checks that one crash state (and a crash at
// each operation of its recovery).
func FuzzCrash(f *testing.F) {
	f.Add(uint64(1), uint16(50), uint8(0))
	f.Add(uint64(7), uint16(400), uint8(2))
	f.Add(uint64(9), uint16(900), uint8(5))
	f.Fuzz(func(t *testing.T, seed uint64, op uint16, variant uint8) {
		cfg := crashSpec(seed)
		cfg.spec.Ticks = 300
		cfg.stopAtOp = int(op)%500 + 1 // the workload makes about 650 operations
		v := crashAllVariants(cfg.stopAtOp)
		choice := v[int(variant)%len(v)]
		cfg.variants = func(int) []memfs.CrashOptions { return []memfs.CrashOptions{choice} }
		cfg.recoverEvery = 1
		cfg.rebuildEvery = 1
		cfg.workers = 1
		reportCrashViolations(t, runCrashHarness(t, cfg))
	})
}
