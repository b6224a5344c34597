package nfdelay

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
)

// Options configures a Delayer.
type Options struct {
	// Queue is the NFQUEUE number; default 0.
	Queue uint16
	// Delay is the mean added delay; required (> 0).
	Delay time.Duration
	// Jitter: each packet waits Delay ± Jitter, uniformly; must be ≤ Delay.
	Jitter time.Duration
	// MaxQueueLen bounds packets held in the kernel; default 4096.
	MaxQueueLen uint32
	// NetNS is an open file descriptor of the network namespace whose queue
	// to serve; 0 means the caller's.
	NetNS int
}

// Stats counts what a Delayer did.
type Stats struct {
	Delayed  uint64
	Released uint64
	Errors   uint64
}

// Delayer delays the packets of one queue.
type Delayer struct {
	opts Options
	mu   sync.Mutex
	held releaseHeap
	st   Stats
	wake chan struct{}
	rnd  *rand.Rand
}

// New validates opts.
func New(opts Options) (*Delayer, error) {
	if opts.Delay <= 0 || opts.Jitter < 0 || opts.Jitter > opts.Delay {
		return nil, errors.New("nfdelay: need Delay > 0 and 0 <= Jitter <= Delay")
	}
	if opts.MaxQueueLen == 0 {
		opts.MaxQueueLen = 4096
	}
	return &Delayer{opts: opts, wake: make(chan struct{}, 1), rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}, nil
}

// Stats returns the counters.
func (d *Delayer) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// Run binds the queue and delays packets until ctx is done.
func (d *Delayer) Run(ctx context.Context) error {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue: d.opts.Queue, MaxQueueLen: d.opts.MaxQueueLen, MaxPacketLen: 0, NetNS: d.opts.NetNS,
		Copymode: nfqueue.NfQnlCopyMeta, WriteTimeout: time.Second,
	})
	if err != nil {
		return fmt.Errorf("nfdelay: open queue %d: %w", d.opts.Queue, err)
	}
	defer nf.Close()
	hookCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = nf.RegisterWithErrorFunc(hookCtx, func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		d.mu.Lock()
		j := time.Duration(0)
		if d.opts.Jitter > 0 {
			j = time.Duration(d.rnd.Int64N(int64(2*d.opts.Jitter+1))) - d.opts.Jitter
		}
		heap.Push(&d.held, release{at: time.Now().Add(d.opts.Delay + j), id: *a.PacketID})
		d.st.Delayed++
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
		return 0
	}, func(e error) int {
		d.mu.Lock()
		d.st.Errors++
		d.mu.Unlock()
		return 0
	})
	if err != nil {
		return fmt.Errorf("nfdelay: register: %w", err)
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := d.releaseDue(nf, false)
		t.Reset(next)
		select {
		case <-ctx.Done():
			d.releaseDue(nf, true)
			return nil
		case <-d.wake:
		case <-t.C:
		}
	}
}

// releaseDue accepts every packet whose time has come (all when flush) and
// returns how long until the next one.
func (d *Delayer) releaseDue(nf *nfqueue.Nfqueue, flush bool) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for d.held.Len() > 0 {
		r := d.held[0]
		if !flush && r.at.After(now) {
			return r.at.Sub(now)
		}
		heap.Pop(&d.held)
		if err := nf.SetVerdict(r.id, nfqueue.NfAccept); err != nil {
			d.st.Errors++
		} else {
			d.st.Released++
		}
	}
	return time.Hour
}

type release struct {
	at time.Time
	id uint32
}

type releaseHeap []release

func (h releaseHeap) Len() int           { return len(h) }
func (h releaseHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h releaseHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *releaseHeap) Push(x any)        { *h = append(*h, x.(release)) }
func (h *releaseHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}
