package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// FrameWriter is where a session's frames go: what *ringstore.StreamWriter
// offers. Append must not block on I/O; it returns ringstore.ErrBackpressure
// when the stream's backlog is full. Append must not keep f.Data after it
// returns (copy what it keeps, as the store does): the session reuses that
// buffer for its next frame.
type FrameWriter interface {
	SetTracks(tracks []ringstore.Track) error
	Append(f ringstore.Frame) (seq uint64, err error)
	MarkGap(cause ringstore.GapCause, at time.Time)
}

// Errors callers act on.
var (
	// ErrStall: the camera kept its session open but sent no video for
	// Options.StallTimeout (or no packet at all for Options.ReadTimeout).
	ErrStall = errors.New("camera stalled: session open but no frames")
	// ErrPanic: the session panicked; it was recovered and restarted.
	ErrPanic = errors.New("recorder session panicked")
	// ErrStore: the store refused the stream for a reason reconnecting
	// cannot fix: it is closed, or SetTracks failed.
	ErrStore = errors.New("store refused the stream")
	// ErrRunning: Run was called on a session that is already running.
	ErrRunning = errors.New("session already running")
)

// Options tune camera sessions. The zero value means every default.
type Options struct {
	// ReadTimeout bounds each RTSP request, TCP connect and read. 0: 10 s.
	ReadTimeout time.Duration
	// StallTimeout: no video frame (or, without video, no frame) for this
	// long while the session stays open closes it and reconnects, with the
	// gap recorded as ringstore.GapStall. 0: 5 s.
	StallTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay between connection
	// attempts, which doubles from min to max. 0: 500 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// BackoffJitter spreads each delay by +- this fraction. 0: 0.2;
	// negative: no jitter.
	BackoffJitter float64
	// HealthyAfter: a connection that recorded this long resets the backoff
	// to BackoffMin. 0: 10 s.
	HealthyAfter time.Duration
	// JumpThreshold: when a track's RTP clock and the wall clock disagree by
	// more than this, the track re-anchors and a GapTimestampJump is
	// recorded. 0: 10 s.
	JumpThreshold time.Duration
	// ClockSlew is the largest correction toward the wall clock applied per
	// second of media, as a fraction (0.01: 10 ms/s); it absorbs drift
	// between the camera's clock and ours. 0: 0.01.
	ClockSlew float64
	// MaxCameraClockSkew: the camera's NTP time (RTCP sender reports) is
	// used as the wall time of its frames only while it is within this of
	// the local clock; else frames are timed by local arrival. 0: 2 s.
	MaxCameraClockSkew time.Duration
	// QueueLength and QueueBytes bound the access units buffered between
	// the RTSP reader and the recorder, in count and in bytes; when either
	// is reached the reader waits (TCP pushes back on the camera). A single
	// unit larger than QueueBytes still passes when the queue is empty.
	// 0: 64 units, 16 MiB.
	QueueLength int
	QueueBytes  int64
	// UserAgent is sent to cameras. "": "nvrd".
	UserAgent string
	// Now is the wall clock. nil: time.Now.
	Now func() time.Time
	// Rand returns uniform numbers in [0, 1) for backoff jitter. nil: math/rand/v2.
	Rand func() float64
	// Logger receives state changes. nil: discard.
	Logger *slog.Logger

	connector connector // nil: gortsplibConnector (tests use a fake)
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadTimeout, 10*time.Second)
	def(&o.StallTimeout, 5*time.Second)
	def(&o.BackoffMin, 500*time.Millisecond)
	def(&o.BackoffMax, 30*time.Second)
	def(&o.HealthyAfter, 10*time.Second)
	def(&o.JumpThreshold, 10*time.Second)
	def(&o.MaxCameraClockSkew, 2*time.Second)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.BackoffJitter == 0 {
		o.BackoffJitter = 0.2
	}
	o.BackoffJitter = min(max(o.BackoffJitter, 0), 1)
	if o.ClockSlew <= 0 {
		o.ClockSlew = 0.01
	}
	o.ClockSlew = min(o.ClockSlew, 0.5)
	if o.QueueLength <= 0 {
		o.QueueLength = 64
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 16 << 20
	}
	if o.UserAgent == "" {
		o.UserAgent = "nvrd"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.connector == nil {
		o.connector = gortsplibConnector{}
	}
	return o
}

// Session records one camera into one store stream: it connects, records
// from the first keyframe, detects stalls, and reconnects with backoff until
// its context ends. Status may be called from any goroutine.
type Session struct {
	cam     Camera
	w       FrameWriter
	opts    Options
	log     *slog.Logger
	running atomic.Bool

	mu sync.Mutex
	st Status

	// Owned by the goroutine in Run.
	sinceGap bool      // frames appended since the last MarkGap
	lastTime time.Time // time of the last frame appended
	window   rateWindow
}

// NewSession returns a session for cam writing into w. It does not connect
// until Run.
func NewSession(cam Camera, w FrameWriter, opts Options) (*Session, error) {
	if err := cam.Validate(); err != nil {
		return nil, err
	}
	if w == nil {
		return nil, fmt.Errorf("recorder session %s: nil FrameWriter", cam.Name)
	}
	opts = opts.withDefaults()
	s := &Session{
		cam:  cam,
		w:    w,
		opts: opts,
		log:  opts.Logger.With("camera", cam.Name),
	}
	s.st = Status{
		Name:      cam.Name,
		URL:       cam.RedactedURL(),
		Transport: cam.transport(),
		State:     StateIdle,
		Since:     opts.Now(),
		Gaps:      map[ringstore.GapCause]uint64{},
	}
	return s, nil
}

// Camera returns the camera the session records.
func (s *Session) Camera() Camera { return s.cam }

// Status returns a snapshot of the session.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Tracks = append([]TrackStatus(nil), st.Tracks...)
	st.Gaps = maps.Clone(st.Gaps)
	return st
}

// Run records until ctx ends (it then returns nil) or the store refuses the
// stream (it returns an error wrapping ErrStore). Connection failures,
// stalls and panics are retried with backoff.
func (s *Session) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	bo := backoff{min: s.opts.BackoffMin, max: s.opts.BackoffMax, jitter: s.opts.BackoffJitter, rand: s.opts.Rand}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.update(func(st *Status) { st.Reconnects++ })
		}
		s.setState(StateConnecting, "")
		res, err := s.attempt(ctx)
		if ctx.Err() != nil {
			// The store attaches the mark to the stream's next frame: that
			// of a session restarted by Manager.Update, or none at shutdown.
			s.endSpan(ringstore.GapCameraOffline)
			s.setState(StateStopped, "")
			return nil
		}
		if errors.Is(err, ErrStore) {
			s.setState(StateError, err.Error())
			return err
		}
		cause := ringstore.GapCameraOffline
		if errors.Is(err, ErrStall) {
			cause = ringstore.GapStall
		}
		s.endSpan(cause)
		if res.recorded >= s.opts.HealthyAfter {
			bo.reset()
		}
		d := bo.next()
		msg := "camera session ended"
		if err != nil {
			msg = err.Error()
		}
		s.setState(StateBackoff, msg)
		s.log.Info("camera session ended, reconnecting", "err", msg, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			s.setState(StateStopped, "")
			return nil
		case <-t.C:
		}
	}
}

// attemptResult summarises one connection.
type attemptResult struct {
	recorded time.Duration // from the first frame recorded to the end
}

// attempt runs one connection: connect, record until it fails, stalls or
// ctx ends. Panics are recovered into ErrPanic.
func (s *Session) attempt(ctx context.Context) (res attemptResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.update(func(st *Status) { st.Panics++ })
			s.log.Error("camera session panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	units := make(chan unit, s.opts.QueueLength)
	gate := newByteGate(s.opts.QueueBytes)
	defer gate.close()
	conn, err := s.opts.connector.connect(connCtx, connectConfig{
		url:         s.cam.URL,
		transport:   s.cam.transport(),
		readTimeout: s.opts.ReadTimeout,
		userAgent:   s.opts.UserAgent,
		now:         s.opts.Now,
		deliver: func(u unit) {
			if !gate.acquire(u.size()) {
				u.release()
				return
			}
			select {
			case units <- u:
			case <-connCtx.Done():
				u.release()
			}
		},
		decodeError: s.decodeError,
	})
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w", s.cam.RedactedURL(), err)
	}
	defer conn.close()
	defer gate.close()
	defer cancel() // these run first: deliver must not block conn.close
	s.update(func(st *Status) { st.Connects++ })
	p := s.newPipeline(conn.tracks())
	s.log.Info("camera connected", "url", s.cam.RedactedURL(), "tracks", p.describe())

	stall := time.NewTimer(s.opts.StallTimeout)
	defer stall.Stop()
	var started time.Time
	defer func() {
		if !started.IsZero() {
			res.recorded = s.opts.Now().Sub(started)
		}
	}()
	take := func(u unit) error {
		gate.release(u.size())
		if u.track == p.primary {
			stall.Reset(s.opts.StallTimeout)
		}
		appended, err := s.handle(p, u)
		u.release() // handle copied what it keeps
		if err != nil {
			return err
		}
		if appended && started.IsZero() {
			started = s.opts.Now()
			s.setState(StateRecording, "")
			s.log.Info("recording", "tracks", p.describe())
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-conn.done():
			// The connection's goroutines are gone: record what they
			// queued before it ended.
			for drained := false; !drained; {
				select {
				case u := <-units:
					if err := take(u); err != nil {
						return res, err
					}
				default:
					drained = true
				}
			}
			if e := conn.err(); e != nil {
				return res, fmt.Errorf("camera session: %w", e)
			}
			return res, errors.New("camera session closed")
		case <-stall.C:
			return res, fmt.Errorf("%w for %v", ErrStall, s.opts.StallTimeout)
		case u := <-units:
			if err := take(u); err != nil {
				return res, err
			}
		}
	}
}

// endSpan marks a gap in the store when frames were appended since the
// last one. The gap starts at the last frame recorded (as the store's Spans
// count it), not when the recorder noticed.
func (s *Session) endSpan(cause ringstore.GapCause) {
	if !s.sinceGap {
		return
	}
	s.sinceGap = false
	s.w.MarkGap(cause, s.lastTime)
	s.update(func(st *Status) { st.Gaps[cause]++ })
}

func (s *Session) decodeError(err error) {
	s.update(func(st *Status) { st.DecodeErrors++ })
	s.log.Debug("camera stream decode error", "err", err)
}

func (s *Session) update(f func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.st)
}

func (s *Session) setState(state State, lastErr string) {
	s.mu.Lock()
	old := s.st.State
	if old != state {
		s.st.State = state
		s.st.Since = s.opts.Now()
	}
	if lastErr != "" {
		s.st.LastError = lastErr
	} else if state == StateRecording {
		s.st.LastError = ""
	}
	s.mu.Unlock()
	if old != state {
		s.log.Debug("camera state", "from", old.String(), "to", state.String())
	}
}

// rateWindow measures bitrate and frame rate over windows of at least two
// seconds.
type rateWindow struct {
	start          time.Time
	bytes, frames  int
	bitrate, fps   float64
	measuredBefore bool
}

func (r *rateWindow) add(now time.Time, bytes int, video bool) (bitrate, fps float64, ok bool) {
	if r.start.IsZero() || now.Before(r.start) {
		r.start = now
		r.bytes, r.frames = 0, 0
	}
	r.bytes += bytes
	if video {
		r.frames++
	}
	el := now.Sub(r.start)
	if el < 2*time.Second {
		return r.bitrate, r.fps, r.measuredBefore
	}
	r.bitrate = float64(r.bytes) * 8 / el.Seconds()
	r.fps = float64(r.frames) / el.Seconds()
	r.measuredBefore = true
	r.start = now
	r.bytes, r.frames = 0, 0
	return r.bitrate, r.fps, true
}

// byteGate bounds the bytes queued between the RTSP reader and the session.
type byteGate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	used   int64
	max    int64
	closed bool
}

func newByteGate(max int64) *byteGate {
	g := &byteGate{max: max}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// acquire waits until n bytes fit (or the queue is empty) and takes them; it
// returns false once the gate is closed.
func (g *byteGate) acquire(n int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for !g.closed && g.used > 0 && g.used+n > g.max {
		g.cond.Wait()
	}
	if g.closed {
		return false
	}
	g.used += n
	return true
}

func (g *byteGate) release(n int64) {
	g.mu.Lock()
	g.used -= n
	g.mu.Unlock()
	g.cond.Broadcast()
}

// close wakes every waiter; later acquires fail. Idempotent.
func (g *byteGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cond.Broadcast()
}
