package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"
)

// Manager errors callers act on.
var (
	// ErrCameraExists: Add was called with a name already recorded.
	ErrCameraExists = errors.New("camera already exists")
	// ErrUnknownCamera: Update or Remove named a camera not recorded.
	ErrUnknownCamera = errors.New("unknown camera")
	// ErrManagerClosed: the manager is closed.
	ErrManagerClosed = errors.New("recorder manager closed")
)

// ManagerOptions configure a Manager. The zero value of every field but
// Writer means its default.
type ManagerOptions struct {
	// Writer returns the store stream for a camera name; it is called once
	// per name for the manager's lifetime (the writer is kept across Update,
	// Remove and Add). With a *ringstore.Store:
	//
	//	Writer: func(name string) (recorder.FrameWriter, error) { return store.Stream(name) }
	//
	// Required.
	Writer func(name string) (FrameWriter, error)
	// Session is the options of every camera session (timeouts, backoff,
	// clock). Its Logger, when nil, is Logger.
	Session Options
	// Logger receives session state changes and recovered panics. nil: discard.
	Logger *slog.Logger
}

// Manager owns the sessions of many cameras: cameras are added, updated and
// removed at runtime without disturbing the others; each session runs in its
// own goroutine, and a session that panics outside its own recovery is
// restarted with backoff. All methods are safe for concurrent use.
type Manager struct {
	opts   ManagerOptions
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	cams    map[string]*managed
	writers map[string]FrameWriter
	wg      sync.WaitGroup
}

// managed is one running session and how to stop it.
type managed struct {
	sess   *Session
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the runner ended (set before done closes)
}

// NewManager returns a manager with no cameras.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Writer == nil {
		return nil, errors.New("recorder manager: ManagerOptions.Writer is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Session.Logger == nil {
		opts.Session.Logger = opts.Logger
	}
	if opts.Session.connector == nil {
		// One frame buffer pool for all cameras: buffers in use follow
		// the frames in flight, not the number of cameras.
		opts.Session.connector = gortsplibConnector{pool: &framePool{}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		opts:    opts,
		log:     opts.Logger,
		ctx:     ctx,
		cancel:  cancel,
		cams:    map[string]*managed{},
		writers: map[string]FrameWriter{},
	}, nil
}

// Add starts recording cam. It fails with ErrInvalidCamera,
// ErrCameraExists, ErrManagerClosed, or the Writer's error.
func (m *Manager) Add(cam Camera) error {
	if err := cam.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrManagerClosed
	}
	if _, ok := m.cams[cam.Name]; ok {
		return fmt.Errorf("add camera %s: %w", cam.Name, ErrCameraExists)
	}
	return m.startLocked(cam)
}

// Update replaces the configuration of a recorded camera (same Name): its
// session is stopped and a new one started when anything changed. The gap
// between them is recorded as ringstore.GapCameraOffline.
func (m *Manager) Update(cam Camera) error {
	if err := cam.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrManagerClosed
	}
	old, ok := m.cams[cam.Name]
	if !ok {
		return fmt.Errorf("update camera %s: %w", cam.Name, ErrUnknownCamera)
	}
	if old.sess.Camera() == cam {
		return nil
	}
	m.stopLocked(old)
	delete(m.cams, cam.Name)
	return m.startLocked(cam)
}

// Remove stops recording the named camera and waits for its session to end.
func (m *Manager) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrManagerClosed
	}
	c, ok := m.cams[name]
	if !ok {
		return fmt.Errorf("remove camera %s: %w", name, ErrUnknownCamera)
	}
	m.stopLocked(c)
	delete(m.cams, name)
	return nil
}

// Set makes the recorded cameras exactly cams: it removes the others, adds
// the new ones and updates the changed ones. It stops at the first invalid
// camera or Writer error (cameras handled before it keep their new state).
func (m *Manager) Set(cams []Camera) error {
	want := map[string]Camera{}
	for _, c := range cams {
		if err := c.Validate(); err != nil {
			return err
		}
		if _, dup := want[c.Name]; dup {
			return fmt.Errorf("%w: camera %s listed twice", ErrInvalidCamera, c.Name)
		}
		want[c.Name] = c
	}
	for _, st := range m.Statuses() {
		if _, ok := want[st.Name]; !ok {
			if err := m.Remove(st.Name); err != nil && !errors.Is(err, ErrUnknownCamera) {
				return err
			}
		}
	}
	for _, c := range cams {
		err := m.Update(c)
		if errors.Is(err, ErrUnknownCamera) {
			err = m.Add(c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Cameras returns the recorded cameras, sorted by name.
func (m *Manager) Cameras() []Camera {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Camera, 0, len(m.cams))
	for _, c := range m.cams {
		out = append(out, c.sess.Camera())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Status returns the named camera's status.
func (m *Manager) Status(name string) (Status, bool) {
	m.mu.Lock()
	c, ok := m.cams[name]
	m.mu.Unlock()
	if !ok {
		return Status{}, false
	}
	return c.sess.Status(), true
}

// Statuses returns every recorded camera's status, sorted by name.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	sessions := make([]*Session, 0, len(m.cams))
	for _, c := range m.cams {
		sessions = append(sessions, c.sess)
	}
	m.mu.Unlock()
	out := make([]Status, len(sessions))
	for i, s := range sessions {
		out[i] = s.Status()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops every session and waits for them. Idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

func (m *Manager) startLocked(cam Camera) error {
	w, ok := m.writers[cam.Name]
	if !ok {
		var err error
		w, err = m.opts.Writer(cam.Name)
		if err != nil {
			return fmt.Errorf("open store stream for camera %s: %w", cam.Name, err)
		}
		if w == nil {
			return fmt.Errorf("open store stream for camera %s: Writer returned nil", cam.Name)
		}
		m.writers[cam.Name] = w
	}
	sess, err := NewSession(cam, w, m.opts.Session)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(m.ctx)
	c := &managed{sess: sess, cancel: cancel, done: make(chan struct{})}
	m.cams[cam.Name] = c
	m.wg.Add(1)
	go m.supervise(ctx, c)
	m.log.Info("camera added", "camera", cam.Name, "url", cam.RedactedURL(), "transport", string(cam.transport()))
	return nil
}

func (m *Manager) stopLocked(c *managed) {
	c.cancel()
	<-c.done
	m.log.Info("camera removed", "camera", c.sess.Camera().Name)
}

// supervise runs a session until ctx ends, restarting it with backoff when
// it panics outside its own recovery. A session that ends with an error
// (the store refused it) stays in StateError.
func (m *Manager) supervise(ctx context.Context, c *managed) {
	defer m.wg.Done()
	defer close(c.done)
	o := c.sess.opts
	bo := backoff{min: o.BackoffMin, max: o.BackoffMax, jitter: o.BackoffJitter, rand: o.Rand}
	for {
		err := m.runProtected(ctx, c.sess)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, ErrPanic) {
			c.err = err
			if err != nil {
				m.log.Error("camera session stopped", "camera", c.sess.Camera().Name, "err", err)
			}
			return
		}
		d := bo.next()
		c.sess.setState(StateBackoff, err.Error())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			c.sess.setState(StateStopped, "")
			return
		case <-t.C:
		}
	}
}

func (m *Manager) runProtected(ctx context.Context, s *Session) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.running.Store(false)
			s.update(func(st *Status) { st.Panics++ })
			m.log.Error("camera session panicked; restarting", "camera", s.Camera().Name, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return s.Run(ctx)
}
