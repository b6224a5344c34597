package ringstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// Options configures Open and Rebuild.
type Options struct {
	// FS is the file system; nil means vfs.Default.
	FS vfs.FS
	// IndexPath is the bbolt index file; "" means DIR/index.db.
	IndexPath string
	// CommitInterval is the commit tick; 0 means 1s.
	CommitInterval time.Duration
	// MaxPendingBytes bounds each stream's not yet committed bytes; 0 means
	// 32 MiB. Beyond it Append returns ErrBackpressure.
	MaxPendingBytes int64
	// MaxAge, when set, drops footage older than this from the index (whole
	// slots, oldest first; reads then report GapEvicted). 0 means no limit.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// OnAlarm is called when the store detects a fault, from the goroutine
	// that found it (the writer, or Check's caller); it must not block. nil
	// ignores alarms.
	OnAlarm func(Alarm)

	knobs testKnobs
}

// Alarm is a fault the store detected.
type Alarm struct {
	Time time.Time
	// Kind is one of "write", "sync", "index", "no-slot", "corrupt".
	Kind string
	// Slot is the slot concerned, -1 when none.
	Slot int
	Err  error
}

const (
	defaultCommitInterval = time.Second
	defaultMaxPending     = 32 << 20
	// writeChunk is the size of the writes the writer issues. Records are
	// copied into the writer's buffer and written from it: a buffer that
	// stays in the CPU's cache between the copy and the kernel's copy into
	// the page cache costs less than fewer, larger writes (4 MiB ones cost
	// about 1.4x the system time); the kernel merges them on write-back anyway.
	writeChunk = 512 << 10
	// maxRecordBytes caps a record's payload (a larger single frame still
	// gets a record of its own, up to a quarter slot).
	maxRecordBytes = 4 << 20
)

// Store is an open volume. It is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	fs   vfs.FS
	vol  VolumeInfo
	db   *bolt.DB
	log  *slog.Logger
	now  func() time.Time

	ret retention // per-stream maximum age (see SetRetention)

	filesMu   sync.Mutex
	files     map[int]*slotFile // nil once closed
	fileClock uint64

	slotMu sync.RWMutex
	slots  []slotHdr // baseGen is what readers check; written by the writer

	metaMu  sync.RWMutex
	metas   map[uint32]*streamMeta
	evicted atomic.Bool // footage was evicted at least once (records then carry recEvicted)

	chunks chunkPool // the streams' pending bytes (see chunkSize)

	mu       sync.Mutex // streams, nextID
	streams  map[string]*StreamWriter
	nextID   uint32
	closed   atomic.Bool   // set by Close; Append checks it without locks
	seq      atomic.Uint64 // last append sequence number handed out
	openedAt time.Time

	durMu   sync.Mutex
	durable uint64
	indexed uint64        // every seq <= it is durable and in the index (visible to reads)
	durCh   chan struct{} // closed and replaced each time durable or indexed moves
	stopped bool          // the writer has exited or failed: nothing more becomes durable
	fatal   error         // why the writer failed, if it did

	kick      chan struct{}
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// commitMu is held by the writer for a whole commit, so tests can see
	// the data and the index between commits.
	commitMu sync.Mutex
	w        writerState // owned by the writer goroutine (and Open before it starts)

	st statsState
}

// Open opens the volume in dir, recovers the head slot, writes an open record
// and starts the writer.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	s, err := openStore(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		s.closeFiles()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(wctx)
	return s, nil
}

// openStore checks identities and loads the in-memory summaries.
func openStore(dir string, opts Options) (*Store, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = defaultCommitInterval
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = defaultMaxPending
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("open store %s: negative MaxAge %v", dir, opts.MaxAge)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	vol, err := readVolume(opts.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	ip := indexPathOr(dir, opts.IndexPath)
	db, err := openIndex(ip)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{
		dir: dir, opts: opts, fs: opts.FS, vol: vol, db: db, log: log, now: opts.Now,
		files:   map[int]*slotFile{},
		streams: map[string]*StreamWriter{},
		durCh:   make(chan struct{}),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	var meta indexMeta
	err = db.View(func(tx *bolt.Tx) error {
		if meta, err = loadMeta(tx); err != nil {
			return err
		}
		if meta.volumeID != vol.ID {
			return fmt.Errorf("%w: index %s belongs to volume %q, %s is volume %q (wrong disk, restored index or swapped volume; `nvrd store rebuild` makes a new index from the volume)",
				ErrIdentityMismatch, ip, meta.volumeID, dir, vol.ID)
		}
		if s.slots, err = loadSlots(tx, vol.Slots); err != nil {
			return err
		}
		s.metas, err = loadStreams(tx)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if meta.head >= vol.Slots {
		db.Close()
		return nil, fmt.Errorf("open store %s: index head slot %d beyond the volume's %d slots", dir, meta.head, vol.Slots)
	}
	s.evicted.Store(meta.evicted)
	for id, m := range s.metas {
		s.nextID = max(s.nextID, id+1)
		_ = m
	}
	s.w.init(meta)
	return s, nil
}

// maxOpenSlots bounds the slot files kept open: a multi-TB volume has
// thousands of slots, more than the appliance's file descriptor limit.
const maxOpenSlots = 256

// slotFile is an open slot file shared by the writer and readers.
type slotFile struct {
	f    vfs.File
	refs int    // users now
	used uint64 // for closing the least recently used
}

// acquire returns slot i's file, opened read-write on first use, and the
// function that releases it. A released file may be closed to stay under
// maxOpenSlots; one in use never is.
func (s *Store) acquire(i int) (vfs.File, func(), error) {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	if s.files == nil {
		return nil, nil, ErrClosed
	}
	sf := s.files[i]
	if sf == nil {
		f, err := s.fs.OpenReadWrite(slotPath(s.dir, i))
		if err != nil {
			return nil, nil, fmt.Errorf("open slot %d: %w", i, err)
		}
		sf = &slotFile{f: f}
		s.files[i] = sf
	}
	sf.refs++
	s.fileClock++
	sf.used = s.fileClock
	s.trimFilesLocked()
	var once sync.Once
	return sf.f, func() {
		once.Do(func() {
			s.filesMu.Lock()
			sf.refs--
			s.filesMu.Unlock()
		})
	}, nil
}

// trimFilesLocked closes the least recently used idle files beyond
// maxOpenSlots. Every write is synced before its file is released, so
// closing loses nothing.
func (s *Store) trimFilesLocked() {
	limit := maxOpenSlots
	if s.opts.knobs.maxOpenFiles > 0 {
		limit = s.opts.knobs.maxOpenFiles
	}
	for len(s.files) > limit {
		victim, oldest := -1, ^uint64(0)
		for i, sf := range s.files {
			if sf.refs == 0 && sf.used < oldest {
				victim, oldest = i, sf.used
			}
		}
		if victim < 0 {
			return
		}
		s.files[victim].f.Close() // read or synced: nothing to lose
		delete(s.files, victim)
	}
}

func (s *Store) closeFiles() error {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	var errs []error
	for _, sf := range s.files {
		errs = append(errs, sf.f.Close())
	}
	s.files = nil
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

// Close commits everything appended, stops the writer and closes the files.
// It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		s.mu.Unlock()
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		s.chunks.release()
		err := s.w.err
		if cerr := s.closeFiles(); err == nil {
			err = cerr
		}
		if err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

// crashClose stops the writer without the final commit and closes the files,
// as a power cut would leave them (tests and benchmarks only).
func (s *Store) crashClose() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		s.mu.Unlock()
		s.w.skipFinal = true
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		s.chunks.release()
		s.closeFiles()
		s.closeErr = ErrClosed
	})
}

func (s *Store) isClosed() bool { return s.closed.Load() }

// Volume returns the volume's identity and geometry.
func (s *Store) Volume() VolumeInfo { return s.vol }

// Durable returns the durable watermark: every seq <= it is acknowledged.
func (s *Store) Durable() uint64 {
	s.durMu.Lock()
	defer s.durMu.Unlock()
	return s.durable
}

func (s *Store) setDurable(seq uint64) {
	s.durMu.Lock()
	if seq > s.durable {
		s.durable = seq
		close(s.durCh)
		s.durCh = make(chan struct{})
	}
	s.durMu.Unlock()
}

// setFatal records that the writer cannot go on: waiters return err.
func (s *Store) setFatal(err error) {
	s.durMu.Lock()
	s.fatal = err
	s.stopped = true
	close(s.durCh)
	s.durCh = make(chan struct{})
	s.durMu.Unlock()
}

func (s *Store) setIndexed(seq uint64) {
	s.durMu.Lock()
	if seq > s.indexed {
		s.indexed = seq
		close(s.durCh)
		s.durCh = make(chan struct{})
	}
	s.durMu.Unlock()
}

// WaitDurable returns when append seq is durable, the context ends, or the
// writer stopped (ErrClosed).
func (s *Store) WaitDurable(ctx context.Context, seq uint64) error {
	return s.wait(ctx, seq, false)
}

func (s *Store) wait(ctx context.Context, seq uint64, indexed bool) error {
	for {
		s.durMu.Lock()
		d, ch, stopped := s.durable, s.durCh, s.stopped
		if indexed {
			d = s.indexed
		}
		s.durMu.Unlock()
		if d >= seq {
			return nil
		}
		if stopped {
			s.durMu.Lock()
			fatal := s.fatal
			s.durMu.Unlock()
			if fatal != nil {
				return fmt.Errorf("wait for seq %d: the writer stopped: %w (%w)", seq, fatal, ErrClosed)
			}
			return fmt.Errorf("wait for seq %d: %w", seq, ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for seq %d (reached %d): %w", seq, d, ctx.Err())
		}
	}
}

// Flush commits now and waits until everything appended before is durable
// and visible to reads (indexed).
func (s *Store) Flush(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	seq := s.seq.Load()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return s.wait(ctx, seq, true)
}

// snapshotIndex writes a consistent copy of the index to w.
func (s *Store) snapshotIndex(w io.Writer) error {
	return s.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

func (s *Store) alarm(kind string, slot int, err error) {
	a := Alarm{Time: s.now(), Kind: kind, Slot: slot, Err: err}
	s.st.addAlarm(a)
	s.log.Error("store alarm", "kind", kind, "slot", slot, "err", err)
	if s.opts.OnAlarm != nil {
		s.opts.OnAlarm(a)
	}
}

// run is the writer goroutine: one commit per tick, a final one on cancel.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		s.durMu.Lock()
		s.stopped = true
		close(s.durCh)
		s.durCh = make(chan struct{})
		s.durMu.Unlock()
	}()
	t := time.NewTicker(s.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if !s.w.skipFinal {
				s.commit()
			}
			return
		case <-t.C:
		case <-s.kick:
		}
		s.commit()
	}
}
