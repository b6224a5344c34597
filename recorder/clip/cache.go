package clip

import (
	"context"
	"errors"
	"sync"
	"time"
)

// CacheOptions configures a Cache.
type CacheOptions struct {
	// Entries bounds the plans kept; the least recently used goes first.
	// 0: 8 (a plan holds about 5 MB per hour of footage).
	Entries int
	// TTL is how long a plan is reused after it was prepared; footage may
	// be evicted or appended after that. 0: 2 minutes.
	TTL time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Cache shares prepared plans between the requests of one export (an HTTP
// client or video player sends many Range requests for the same range, each
// of which would otherwise scan the whole range again). Concurrent requests
// for the same range wait for one scan. A Cache serves one Source. It is
// safe for concurrent use and starts no goroutines.
type Cache struct {
	opts    CacheOptions
	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
}

type cacheKey struct {
	stream              string
	from, to            int64
	maxBytes, maxBuffer int64
	maxDuration         time.Duration
}

type cacheEntry struct {
	done     chan struct{} // closed when plan or err is set
	plan     *Plan
	err      error
	prepared time.Time
	used     time.Time
}

// NewCache returns an empty cache.
func NewCache(opts CacheOptions) (*Cache, error) {
	if opts.Entries < 0 || opts.TTL < 0 {
		return nil, errors.New("clip: cache options: negative Entries or TTL")
	}
	if opts.Entries == 0 {
		opts.Entries = 8
	}
	if opts.TTL == 0 {
		opts.TTL = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{opts: opts, entries: map[cacheKey]*cacheEntry{}}, nil
}

// Prepare returns a plan for opts, prepared by an earlier call with the same
// range and limits within TTL, or by this one (see Prepare). Options.Progress
// is only called by the call that prepares. Failures are not cached.
func (c *Cache) Prepare(ctx context.Context, src Source, opts Options) (*Plan, error) {
	key := cacheKey{opts.Stream, opts.From.UnixNano(), opts.To.UnixNano(), opts.MaxBytes, opts.MaxBuffered, opts.MaxDuration}
	for {
		c.mu.Lock()
		now := c.opts.Now()
		c.expireLocked(now)
		e, ok := c.entries[key]
		if !ok {
			e = &cacheEntry{done: make(chan struct{}), prepared: now, used: now}
			c.entries[key] = e
			c.evictLocked()
			c.mu.Unlock()
			e.plan, e.err = Prepare(ctx, src, opts)
			if e.err != nil {
				c.mu.Lock()
				if c.entries[key] == e {
					delete(c.entries, key)
				}
				c.mu.Unlock()
			}
			close(e.done)
			return e.plan, e.err
		}
		e.used = now
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.plan, nil
		}
		if !errors.Is(e.err, context.Canceled) && !errors.Is(e.err, context.DeadlineExceeded) {
			return nil, e.err
		}
		// The preparing caller gave up; prepare again (for this caller).
	}
}

// expireLocked drops prepared entries older than TTL.
func (c *Cache) expireLocked(now time.Time) {
	for k, e := range c.entries {
		if isDone(e) && now.Sub(e.prepared) >= c.opts.TTL {
			delete(c.entries, k)
		}
	}
}

// evictLocked drops the least recently used prepared entries beyond
// Entries (entries being prepared stay).
func (c *Cache) evictLocked() {
	for len(c.entries) > c.opts.Entries {
		var oldest cacheKey
		var victim *cacheEntry
		for k, e := range c.entries {
			if isDone(e) && (victim == nil || e.used.Before(victim.used)) {
				oldest, victim = k, e
			}
		}
		if victim == nil {
			return
		}
		delete(c.entries, oldest)
	}
}

func isDone(e *cacheEntry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}
