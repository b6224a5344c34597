package watchdog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs"
	"github.com/nvrfw/nvr/watchdog"
	"github.com/nvrfw/nvr/watchdog/watchdogtest"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// waitFor polls cond for up to 5s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

// rig runs a Guard on a fake dog and a manual clock.
type rig struct {
	t      *testing.T
	clk    *watchdogtest.Clock
	dog    *watchdogtest.Dog
	g      *watchdog.Guard
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// newRig builds a Guard with a 3s timeout (1s interval) and no boot grace
// unless opts says otherwise; setup registers checks before Run starts.
func newRig(t *testing.T, opts watchdog.Options, setup func(*watchdog.Guard, *watchdogtest.Clock)) *rig {
	t.Helper()
	r := &rig{t: t, clk: watchdogtest.NewClock(t0), log: &syncBuffer{}}
	r.dog = watchdogtest.NewDog(60*time.Second, false, r.clk)
	opts.Device, opts.Clock = r.dog, r.clk
	opts.Logger = slog.New(slog.NewTextHandler(r.log, nil))
	if opts.Timeout == 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.BootGrace == 0 {
		opts.BootGrace = -1
	}
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = 5 * time.Second // checks here return at once; a loaded CI machine must not make them "hang"
	}
	g, err := watchdog.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.g = g
	if setup != nil {
		setup(g, r.clk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- g.Run(ctx) }()
	waitFor(t, "first tick", func() bool { return g.Status().Ticks >= 1 && r.clk.Tickers() >= 1 })
	t.Cleanup(r.stop)
	return r
}

// step advances the clock by one interval and waits for the Guard's tick.
func (r *rig) step() {
	r.t.Helper()
	st := r.g.Status()
	r.clk.Advance(st.Interval)
	waitFor(r.t, "guard tick", func() bool { return r.g.Status().Ticks == st.Ticks+1 })
}

// petted steps once and reports whether that tick petted the device.
func (r *rig) petted() bool {
	r.t.Helper()
	before := r.dog.Pets()
	r.step()
	return r.dog.Pets() > before
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatal("Run did not return after cancel")
	}
	if n := r.clk.Tickers(); n != 0 {
		r.t.Errorf("%d tickers left running", n)
	}
}

// flag is a check that fails while set.
type flag struct{ bad atomic.Bool }

func (f *flag) check(time.Time) error {
	if f.bad.Load() {
		return errors.New("camera cam1 should record but is not recording")
	}
	return nil
}

func TestGuardStopsWithinOnePeriodAndResumes(t *testing.T) {
	var f flag
	r := newRig(t, watchdog.Options{}, func(g *watchdog.Guard, _ *watchdogtest.Clock) {
		if err := g.AddCheck("cameras", f.check); err != nil {
			t.Fatal(err)
		}
	})
	if st := r.g.Status(); st.Interval != time.Second || st.Timeout != 3*time.Second {
		t.Fatalf("interval %v timeout %v, want 1s 3s", st.Interval, st.Timeout)
	}
	if r.dog.Pets() != 1 {
		t.Fatalf("pets after start = %d, want 1", r.dog.Pets())
	}
	for i := 0; i < 3; i++ {
		if !r.petted() {
			t.Fatalf("healthy tick %d did not pet", i)
		}
	}
	f.bad.Store(true)
	for i := 0; i < 4; i++ {
		if r.petted() {
			t.Fatalf("tick %d after the check failed still petted", i)
		}
	}
	st := r.g.Status()
	if st.Petting || len(st.Checks) != 1 || !st.Checks[0].Failing || !strings.Contains(st.Checks[0].Error, "cam1") {
		t.Fatalf("status while failing = %+v", st)
	}
	f.bad.Store(false)
	if !r.petted() {
		t.Fatal("petting did not resume within one period of the check passing")
	}
	if n := r.log.count(`msg="watchdog check failing"`); n != 1 {
		t.Errorf("logged the failure %d times over 4 failing ticks, want once", n)
	}
	if n := r.log.count(`check=cameras`); n != 2 {
		t.Errorf("check named in %d log lines, want 2 (failing, recovered)", n)
	}
	if n := r.log.count(`petting stopped`); n != 1 {
		t.Errorf("petting stopped logged %d times, want 1", n)
	}
}

func TestGuardPolicy(t *testing.T) {
	failing := func(time.Time) error { return errors.New("broken") }
	// State the closures of one case share; cases run one after another.
	var (
		holds *watchdog.Hold
		beat  *watchdog.Heartbeat
	)
	for _, tc := range []struct {
		name  string
		opts  watchdog.Options
		setup func(*watchdog.Guard, *watchdogtest.Clock)
		// act runs between ticks; want[i] is whether tick i petted.
		act  func(r *rig, i int)
		want []bool
	}{
		{
			name: "boot grace pets despite a failing check, then stops",
			opts: watchdog.Options{BootGrace: 3 * time.Second},
			setup: func(g *watchdog.Guard, _ *watchdogtest.Clock) {
				_ = g.AddCheck("store", failing)
			},
			want: []bool{true, true, false, false},
		},
		{
			name: "advisory check never stops petting",
			opts: watchdog.Options{Advisory: []string{"smart"}},
			setup: func(g *watchdog.Guard, _ *watchdogtest.Clock) {
				_ = g.AddCheck("smart", failing)
			},
			want: []bool{true, true, true},
		},
		{
			name: "maintenance hold pets until it expires",
			setup: func(g *watchdog.Guard, _ *watchdogtest.Clock) {
				_ = g.AddCheck("store", failing)
				if _, err := g.Hold("firmware install", 2500*time.Millisecond); err != nil {
					panic(err)
				}
			},
			want: []bool{true, true, false, false},
		},
		{
			name: "released hold stops petting at the next tick",
			setup: func(g *watchdog.Guard, _ *watchdogtest.Clock) {
				_ = g.AddCheck("store", failing)
			},
			act: func(r *rig, i int) {
				switch i {
				case 0:
					h, err := r.g.Hold("firmware install", time.Minute)
					if err != nil {
						r.t.Fatal(err)
					}
					holds = h
				case 2:
					holds.Release()
					holds.Release()
				}
			},
			want: []bool{true, true, false, false},
		},
		{
			name: "heartbeat keeps petting while beaten",
			setup: func(g *watchdog.Guard, _ *watchdogtest.Clock) {
				h, err := g.Heartbeat("recorder-loop", 2*time.Second)
				if err != nil {
					panic(err)
				}
				beat = h
			},
			act: func(r *rig, i int) {
				if i < 2 {
					beat.Beat()
				}
			},
			// beats at ticks 0,1 (t=0s,1s): fine until t=3s, the first tick
			// more than 2s after the last beat.
			want: []bool{true, true, true, false, false},
		},
		{
			name: "panicking check counts as failing",
			setup: func(g *watchdog.Guard, _ *watchdogtest.Clock) {
				_ = g.AddCheck("bad", func(time.Time) error { panic("boom") })
			},
			want: []bool{false, false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts, tc.setup)
			for i, want := range tc.want {
				if tc.act != nil {
					tc.act(r, i)
				}
				if got := r.petted(); got != want {
					t.Fatalf("tick %d petted = %v, want %v (status %+v)", i+1, got, want, r.g.Status())
				}
			}
		})
	}
}

func TestGuardTimeouts(t *testing.T) {
	t.Run("fixed driver timeout sets the interval", func(t *testing.T) {
		clk := watchdogtest.NewClock(t0)
		dog := watchdogtest.NewDog(9*time.Second, true, clk)
		g, err := watchdog.New(watchdog.Options{Device: dog, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		waitFor(t, "start", func() bool { return g.Status().Ticks == 1 })
		if st := g.Status(); st.Timeout != 9*time.Second || st.Interval != 3*time.Second {
			t.Errorf("timeout %v interval %v, want 9s 3s", st.Timeout, st.Interval)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	for _, opts := range []watchdog.Options{
		{Timeout: 3 * time.Second, Interval: 2 * time.Second},
		{Timeout: 1500 * time.Millisecond},
		{Interval: -time.Second},
	} {
		opts.Device = watchdogtest.NewDog(time.Minute, false, nil)
		if _, err := watchdog.New(opts); err == nil {
			t.Errorf("New(timeout %v interval %v) accepted", opts.Timeout, opts.Interval)
		}
	}
	g, _ := watchdog.New(watchdog.Options{Device: watchdogtest.NewDog(time.Minute, false, nil)})
	if _, err := g.Hold("too long", time.Hour); !errors.Is(err, watchdog.ErrHoldTooLong) {
		t.Errorf("Hold(1h) = %v, want ErrHoldTooLong", err)
	}
	_ = g.AddCheck("x", func(time.Time) error { return nil })
	if err := g.AddCheck("x", func(time.Time) error { return nil }); !errors.Is(err, watchdog.ErrDuplicateCheck) {
		t.Errorf("duplicate AddCheck = %v", err)
	}
}

func TestGuardKeepAliveErrors(t *testing.T) {
	r := newRig(t, watchdog.Options{}, nil)
	r.dog.FailPets(errors.New("EIO"))
	r.step()
	r.step()
	r.dog.FailPets(nil)
	if !r.petted() {
		t.Fatal("no pet after the device recovered")
	}
	if st := r.g.Status(); st.PetErrors != 2 {
		t.Errorf("PetErrors = %d, want 2", st.PetErrors)
	}
	if n := r.log.count("keepalive failed"); n != 1 {
		t.Errorf("keepalive failure logged %d times, want 1", n)
	}
}

// stallFile is a vfs.File whose Datasync blocks while the test holds it.
type stallFile struct {
	vfs.File // nil: only the methods below are used
	mu       sync.Mutex
	gate     chan struct{} // non-nil: Datasync waits for it to close
	inSync   atomic.Bool
}

func (f *stallFile) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

func (f *stallFile) Datasync() error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		f.inSync.Store(true)
		<-gate
		f.inSync.Store(false)
	}
	return nil
}

func (f *stallFile) stall() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = make(chan struct{})
}

func (f *stallFile) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.gate)
	f.gate = nil
}

// miniStore is a store-like writer: each commit tick it writes a batch and
// Datasyncs it, and only then advances its durable watermark, as ringstore
// does.
type miniStore struct {
	f       vfs.File
	clk     watchdog.Clock
	last    atomic.Int64
	commits atomic.Int64
}

func (s *miniStore) lastCommit() time.Time { return time.Unix(0, s.last.Load()) }

func (s *miniStore) run(ctx context.Context, period time.Duration) {
	t := s.clk.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			if _, err := s.f.WriteAt(make([]byte, 4096), 0); err != nil {
				continue
			}
			if err := s.f.Datasync(); err != nil {
				continue
			}
			s.last.Store(s.clk.Now().UnixNano())
			s.commits.Add(1)
		}
	}
}

func TestGuardStoreStalledInDatasync(t *testing.T) {
	before := runtime.NumGoroutine()
	file := &stallFile{}
	var store *miniStore
	const bound = 2 * time.Second
	r := newRig(t, watchdog.Options{}, func(g *watchdog.Guard, clk *watchdogtest.Clock) {
		store = &miniStore{f: file, clk: clk}
		store.last.Store(clk.Now().UnixNano()) // the open record
		if err := g.AddCheck("store-commit", watchdog.Recent(store.lastCommit, bound)); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); store.run(ctx, time.Second) }()
	waitFor(t, "store ticker", func() bool { return r.clk.Tickers() == 2 })

	// stepBoth advances one interval and waits for the Guard's tick and, when
	// the store is not stalled, for its commit.
	stepBoth := func(wantCommit bool) bool {
		c := store.commits.Load()
		pets := r.dog.Pets()
		r.step()
		if wantCommit {
			waitFor(t, "store commit", func() bool { return store.commits.Load() > c })
		}
		return r.dog.Pets() > pets
	}
	for i := 0; i < 3; i++ {
		if !stepBoth(true) {
			t.Fatalf("healthy tick %d did not pet", i)
		}
	}
	lastGood := store.lastCommit()
	file.stall()
	// The stalled commit tick: the store blocks in Datasync.
	r.clk.Advance(time.Second)
	waitFor(t, "store blocked in Datasync", file.inSync.Load)
	waitFor(t, "guard tick", func() bool { return r.g.Status().Ticks == 5 })
	var stoppedAt time.Time
	for i := 0; i < 5; i++ {
		petted := stepBoth(false)
		now := r.clk.Now()
		overdue := now.Sub(lastGood) > bound
		if petted == overdue {
			t.Fatalf("at +%v since the last commit petted=%v; want petting exactly until the %v bound", now.Sub(lastGood), petted, bound)
		}
		if !petted && stoppedAt.IsZero() {
			stoppedAt = now
		}
	}
	if late := stoppedAt.Sub(lastGood.Add(bound)); late <= 0 || late > time.Second {
		t.Fatalf("petting stopped %v after the check's bound, want within one period (1s)", late)
	}
	c := store.commits.Load()
	file.release()
	waitFor(t, "store commit after release", func() bool { return store.commits.Load() > c })
	if !stepBoth(false) {
		t.Fatal("petting did not resume within one period after Datasync returned")
	}
	cancel()
	wg.Wait()
	r.stop()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// preDog is a Dog that also takes a pretimeout.
type preDog struct {
	*watchdogtest.Dog
	pre atomic.Int64
	err error
}

func (p *preDog) SetPreTimeout(d time.Duration) (time.Duration, error) {
	if p.err != nil {
		return 0, p.err
	}
	p.pre.Store(int64(d))
	return d, nil
}

func TestGuardPreTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pre     time.Duration
		err     error
		wantRun bool
		wantSet time.Duration
	}{
		{"set", 2 * time.Second, nil, true, 2 * time.Second},
		{"driver without pretimeout", 2 * time.Second, watchdog.ErrNotSupported, true, 0},
		{"driver error", 2 * time.Second, errors.New("EIO"), false, 0},
		{"not shorter than the timeout", 3 * time.Second, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := watchdogtest.NewClock(t0)
			dog := &preDog{Dog: watchdogtest.NewDog(time.Minute, false, clk), err: tc.err}
			g, err := watchdog.New(watchdog.Options{Device: dog, Clock: clk, Timeout: 3 * time.Second, PreTimeout: tc.pre})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // Run programs the device, pets once, and returns
			err = g.Run(ctx)
			if (err == nil) != tc.wantRun {
				t.Fatalf("Run = %v, want success %v", err, tc.wantRun)
			}
			if got := time.Duration(dog.pre.Load()); got != tc.wantSet {
				t.Errorf("pretimeout set to %v, want %v", got, tc.wantSet)
			}
		})
	}
}

func TestGuardCheckMayCallGuard(t *testing.T) {
	var g *watchdog.Guard
	r := newRig(t, watchdog.Options{}, func(gg *watchdog.Guard, _ *watchdogtest.Clock) {
		g = gg
		_ = gg.AddCheck("self", func(time.Time) error {
			if g.Status().Ticks > 1000 {
				return errors.New("too many ticks")
			}
			return nil
		})
	})
	if !r.petted() {
		t.Fatal("no pet with a check that reads the Guard's status")
	}
	if err := g.Run(context.Background()); !errors.Is(err, watchdog.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

func TestGuardHungCheck(t *testing.T) {
	var calls atomic.Int32
	var hang atomic.Bool
	release := make(chan struct{})
	r := newRig(t, watchdog.Options{CheckTimeout: 200 * time.Millisecond}, func(g *watchdog.Guard, _ *watchdogtest.Clock) {
		_ = g.AddCheck("appliance-health", func(time.Time) error {
			calls.Add(1)
			if hang.Load() {
				<-release // e.g. a health function stuck behind a lock held across an fsync
			}
			return nil
		})
	})
	if !r.petted() {
		t.Fatal("healthy tick did not pet")
	}
	hang.Store(true)
	for i := 0; i < 3; i++ {
		if r.petted() {
			t.Fatalf("tick %d with the check hung still petted", i)
		}
	}
	st := r.g.Status()
	if !st.Checks[0].Failing || !strings.Contains(st.Checks[0].Error, "did not return") {
		t.Fatalf("hung check status %+v", st.Checks[0])
	}
	if n := calls.Load(); n != 3 { // initial, healthy tick, the one that hung
		t.Fatalf("check started %d times, want 3: a hung check must not be started again", n)
	}
	hang.Store(false)
	close(release)
	waitFor(t, "hung check to return", func() bool {
		r.step()
		return r.dog.Pets() > 2
	})
	if n := r.log.count(`msg="watchdog check failing"`); n != 1 {
		t.Errorf("failure logged %d times", n)
	}
}
