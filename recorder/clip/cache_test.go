package clip

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gatedSource holds its first Frames call until gate is closed, telling
// entered when it got there.
type gatedSource struct {
	Source
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedSource) Frames(stream string, from, to time.Time) (FrameReader, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.gate
	}
	return g.Source.Frames(stream, from, to)
}

// cacheFixture is a recorded stream and a fake clock for the cache tests.
type cacheFixture struct {
	rec   recording
	opts  Options
	mu    sync.Mutex
	clock time.Time
}

func newCacheFixture() *cacheFixture {
	return &cacheFixture{
		rec:   syntheticRecording(3),
		opts:  Options{Stream: "cam1", From: t0, To: sec(2)},
		clock: t0,
	}
}

func (f *cacheFixture) source() *fakeSource {
	src := newFakeSource()
	src.add("cam1", f.rec, t0, nil)
	return src
}

// now advances the clock by a millisecond a call, so that uses are ordered.
func (f *cacheFixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(time.Millisecond)
	return f.clock
}

func (f *cacheFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.clock = f.clock.Add(d)
	f.mu.Unlock()
}

func TestCacheReuseLimitsExpiry(t *testing.T) {
	f := newCacheFixture()
	ctx := context.Background()
	opts := f.opts
	src := f.source()
	c, err := NewCache(CacheOptions{Entries: 2, TTL: time.Minute, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		opts  Options
		after time.Duration // clock advance before the call
		scans int64         // scans so far after the call
	}{
		{"first", opts, 0, 1},
		{"same range", opts, 0, 1},
		{"other range", Options{Stream: "cam1", From: t0, To: sec(1)}, 0, 2},
		{"first again", opts, 0, 2},
		{"third range evicts the least recently used", Options{Stream: "cam1", From: sec(1), To: sec(2)}, 0, 3},
		{"first still cached", opts, 0, 3},
		{"evicted range", Options{Stream: "cam1", From: t0, To: sec(1)}, 0, 4},
		{"expired", opts, time.Minute, 5},
		{"no footage is not cached", Options{Stream: "cam1", From: sec(10), To: sec(20)}, 0, 6},
		{"no footage again", Options{Stream: "cam1", From: sec(10), To: sec(20)}, 0, 7},
	}
	var first *Plan
	for _, s := range steps {
		f.advance(s.after)
		p, err := c.Prepare(ctx, src, s.opts)
		if (err != nil) != errors.Is(err, ErrNoFootage) {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := src.opens.Load(); got != s.scans {
			t.Fatalf("%s: %d scans, want %d", s.name, got, s.scans)
		}
		if s.name == "first" {
			first = p
		}
		if s.name == "same range" && p != first {
			t.Fatalf("same range: a different plan")
		}
	}
}

func TestCacheConcurrentCallersShareOneScan(t *testing.T) {
	f := newCacheFixture()
	ctx, opts := context.Background(), f.opts
	src := f.source()
	c, err := NewCache(CacheOptions{Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	plans := make([]*Plan, 8)
	for i := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.Prepare(ctx, src, opts)
			if err != nil {
				t.Error(err)
			}
			plans[i] = p
		}()
	}
	wg.Wait()
	if n := src.opens.Load(); n != 1 {
		t.Fatalf("%d scans, want 1", n)
	}
	for _, p := range plans[1:] {
		if p != plans[0] {
			t.Fatal("callers got different plans")
		}
	}
}

// A waiter prepares again when the preparer gives up.
func TestCacheWaiterRetries(t *testing.T) {
	f := newCacheFixture()
	ctx, opts := context.Background(), f.opts
	src := &gatedSource{Source: f.source(), entered: make(chan struct{}), gate: make(chan struct{})}
	c, err := NewCache(CacheOptions{Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Prepare(lctx, src, opts)
		leaderErr <- err
	}()
	<-src.entered
	waiter := make(chan error, 1)
	go func() {
		p, err := c.Prepare(ctx, src, opts)
		if err == nil && p.Size() == 0 {
			err = errors.New("empty plan")
		}
		waiter <- err
	}()
	// Wait (bounded) until the waiter waits on the preparer's entry.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		var waiting bool
		for _, e := range c.entries {
			waiting = waiting || e.used.After(e.prepared)
		}
		c.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("waiter never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(src.gate)
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("preparer: %v, want context.Canceled", err)
	}
	if err := <-waiter; err != nil {
		t.Fatalf("waiter: %v", err)
	}
}
