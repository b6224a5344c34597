package mirror

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// SenderOptions configures a Sender.
type SenderOptions struct {
	// Store is the primary's store (required). The sender only reads it.
	Store *ringstore.Store
	// NodeID is this node's ID (required).
	NodeID string
	// TLS is the client configuration (required): TLS 1.3 with this
	// node's pair certificate (pairing.Bundle.ClientConfig).
	TLS *tls.Config
	// Addr returns where the standby's receiver listens now (the cluster
	// code decides: dedicated link first, LAN fallback); ok false means
	// no path is up (required).
	Addr func() (addr string, ok bool)
	// Epoch returns the epoch this node is primary under; every message
	// carries it (required). 0 means not primary: the sender does not
	// connect.
	Epoch func() uint64
	// State is this node's mirror state, the same one its Receiver uses
	// (what it received from the peer when it was standby, and its own
	// footage the peer may lack); nil keeps it in memory, which makes
	// resumption after a restart or role change ship more than needed.
	State *State
	// MaxVersion is the newest protocol version offered; 0 means
	// MaxVersion.
	MaxVersion uint8
	// BatchBytes bounds the record bytes of one batch; 0 means 1 MiB.
	BatchBytes int
	// Window bounds the bytes shipped but not yet acknowledged; 0 means
	// 32 MiB. The sender stops reading the store while it is full: a slow
	// standby makes the mirror lag, never the recording.
	Window int64
	// Poll is how often the sender looks for new records at the end of
	// the log; 0 means 100 ms.
	Poll time.Duration
	// Keepalive is the longest the sender stays silent; 0 means 1 s.
	Keepalive time.Duration
	// Retry is the pause before reconnecting; 0 means 1 s.
	Retry time.Duration
	// Logger receives connection events and refusals; nil discards them.
	Logger *slog.Logger
}

// Sender is the primary's side: it tails its store from the standby's
// acknowledged position (by content after a role change) and ships every
// committed record.
type Sender struct {
	opts    SenderOptions
	log     *slog.Logger
	restart [16]byte

	mu sync.Mutex
	st Status
	// acked is the position each receiver store (by volume ID) acknowledged
	// under each epoch, valid in this process: this store's log positions.
	// After another epoch (this node was standby meanwhile, and its log
	// holds the peer's footage) resumption is by content again.
	acked map[string]ringstore.Position
	// base is the log distance from baseAt (an acked position) to the head
	// when the sender last found nothing more to ship: records after the
	// acked one that are never shipped (padding, open records) are not lag.
	base   int64
	baseAt ringstore.Position
}

// NewSender validates opts and returns a Sender.
func NewSender(opts SenderOptions) (*Sender, error) {
	if opts.Store == nil || opts.NodeID == "" || opts.TLS == nil || opts.Addr == nil || opts.Epoch == nil {
		return nil, errors.New("mirror sender: Store, NodeID, TLS, Addr and Epoch are required")
	}
	if opts.TLS.MinVersion < tls.VersionTLS13 || len(opts.TLS.Certificates) == 0 && opts.TLS.GetClientCertificate == nil {
		return nil, errors.New("mirror sender: TLS must require TLS 1.3 and carry this node's certificate")
	}
	if opts.MaxVersion == 0 {
		opts.MaxVersion = MaxVersion
	}
	if opts.MaxVersion < MinVersion || opts.MaxVersion > MaxVersion {
		return nil, fmt.Errorf("mirror sender: MaxVersion %d outside %d..%d", opts.MaxVersion, MinVersion, MaxVersion)
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = 1 << 20
	}
	if opts.Window == 0 {
		opts.Window = 32 << 20
	}
	if opts.Poll == 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.Keepalive == 0 {
		opts.Keepalive = time.Second
	}
	if opts.Retry == 0 {
		opts.Retry = time.Second
	}
	if opts.State == nil {
		opts.State, _ = OpenState("")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{opts: opts, log: log, acked: map[string]ringstore.Position{}}
	rand.Read(s.restart[:])
	return s, nil
}

// Status returns the sender's figures, with the lag computed now.
func (s *Sender) Status() Status {
	s.mu.Lock()
	st := s.st
	base, baseAt := s.base, s.baseAt
	s.mu.Unlock()
	var newest time.Time
	for _, t := range s.opts.Store.NewestByStream() {
		if t.After(newest) {
			newest = t
		}
	}
	st.PrimaryNewest = newest
	st.LagBytes = s.opts.Store.BytesAfter(st.Acked)
	if baseAt == st.Acked {
		st.LagBytes = max(0, st.LagBytes-base)
	}
	from := st.AckedNewest
	if from.IsZero() {
		// Nothing acknowledged yet: all the footage held is behind.
		if sts, err := s.opts.Store.Streams(); err == nil {
			for _, si := range sts {
				if from.IsZero() || si.First.Before(from) {
					from = si.First
				}
			}
		}
	}
	if st.LagBytes > 0 && newest.After(from) {
		st.LagSeconds = newest.Sub(from).Seconds()
	}
	return st
}

// Run ships to the standby until ctx ends, reconnecting after failures.
// It returns nil when ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errPathChanged) {
			s.mu.Lock()
			s.st.Reconnects++
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.st.Connected = false
		s.st.Reconnects++
		if err != nil {
			s.st.LastError = err.Error()
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("mirror: link to standby failed; retrying", "err", err, "retry", s.opts.Retry)
		}
		t := time.NewTimer(s.opts.Retry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	s.mu.Lock()
	s.st.Connected = false
	s.mu.Unlock()
	return nil
}

// conn is one connection to a receiver.
type conn struct {
	tc      *tls.Conn
	addr    string // as Addr gave it
	epoch   uint64 // the epoch the hello carried
	version uint8
	reply   helloReply
}

// dial connects and exchanges hellos.
func (s *Sender) dial(ctx context.Context) (*conn, error) {
	addr, ok := s.opts.Addr()
	if !ok {
		return nil, errors.New("no path to the standby")
	}
	if s.opts.Epoch() == 0 {
		return nil, errors.New("no epoch yet: not primary")
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: s.opts.TLS, NetDialer: &net.Dialer{KeepAlive: 5 * time.Second}}
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial standby %s: %w", addr, err)
	}
	tc := nc.(*tls.Conn)
	if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Subject.CommonName == s.opts.NodeID {
		tc.Close()
		return nil, fmt.Errorf("the mirror address %s is this node's own receiver", addr)
	}
	h := hello{MinVersion: MinVersion, MaxVersion: s.opts.MaxVersion, StoreFormat: ringstore.FormatVersion, Epoch: s.opts.Epoch(), NodeID: s.opts.NodeID, RestartID: s.restart, VolumeID: s.opts.Store.Volume().ID}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(tc, h.MaxVersion, msgHello, h.encode()); err != nil {
		tc.Close()
		return nil, fmt.Errorf("send hello to %s: %w", addr, err)
	}
	f, err := readFrame(tc)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("hello from %s: %w", addr, err)
	}
	if f.Type == msgError {
		m, _ := decodeError(f.Payload)
		tc.Close()
		return nil, fmt.Errorf("standby at %s refused: %s", addr, m.Text)
	}
	if f.Type != msgHelloReply {
		tc.Close()
		return nil, fmt.Errorf("%w: standby at %s answered type %d", ErrProtocol, addr, f.Type)
	}
	rep, err := decodeHelloReply(f.Payload)
	if err == nil && (rep.Version < MinVersion || rep.Version > s.opts.MaxVersion) {
		err = fmt.Errorf("%w: standby chose version %d", ErrProtocol, rep.Version)
	}
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("hello from %s: %w", addr, err)
	}
	tc.SetDeadline(time.Time{})
	return &conn{tc: tc, addr: addr, epoch: h.Epoch, version: rep.Version, reply: rep}, nil
}

// session ships over one connection until it fails or ctx ends.
func (s *Sender) session(ctx context.Context) error {
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer c.tc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.tc.SetDeadline(time.Now()) })
	defer stop()
	start, filter, err := s.resume(c.reply)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st.Connected, s.st.Peer, s.st.Version, s.st.Epoch = true, c.reply.NodeID, c.version, s.opts.Epoch()
	s.st.Addr = c.tc.RemoteAddr().String()
	s.mu.Unlock()
	s.log.Info("mirror: shipping to standby", "peer", c.reply.NodeID, "version", c.version, "from", start, "by_content", filter != nil)
	w := newWindow(s.opts.Window)
	ackErr := make(chan error, 1)
	go func() {
		ackErr <- s.readAcks(c, w)
		cancel()
	}()
	err = s.ship(ctx, c, w, start, filter)
	cancel()
	if aerr := <-ackErr; aerr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = aerr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// resume decides where to start: the position this receiver store
// acknowledged under this epoch in this process, or by content (see
// contentFilter).
func (s *Sender) resume(rep helloReply) (ringstore.Position, contentFilter, error) {
	s.mu.Lock()
	pos, ok := s.acked[ackKey(rep.VolumeID, s.opts.Epoch())]
	s.mu.Unlock()
	if ok {
		return pos, nil, nil
	}
	filter := contentFilter{}
	for _, m := range rep.Streams {
		filter[m.Name] = streamFilter{lo: m.FromYou, hi: m.FromYou}
	}
	for name, t := range s.opts.State.Received(rep.NodeID) {
		if f := filter[name]; t.After(f.hi) {
			f.hi = t
			filter[name] = f
		}
	}
	for name, w := range s.opts.State.Own(rep.NodeID) {
		if f := filter[name]; w[1].After(f.lo) {
			if w[0].After(f.lo) {
				f.lo = w[0]
			}
			f.mid = w[1]
			filter[name] = f
		}
	}
	var start ringstore.Position
	first := true
	for name := range s.opts.Store.NewestByStream() {
		p := ringstore.Position{}
		if t := filter[name].lo; !t.IsZero() {
			var err error
			if p, err = s.opts.Store.ResumeBefore(name, t); err != nil {
				return ringstore.Position{}, nil, err
			}
		}
		if first || p.Less(start) {
			start, first = p, false
		}
	}
	return start, filter, nil
}

// contentFilter says, per stream, which frames the receiver lacks when
// resuming by content: those after hi (the newer of what it got from this
// node and what this node got from it: older footage came from the peer),
// and those in (lo, mid]: this node's own footage of a window the peer
// may have recorded too (State.Own), which the peer never got (lo: the
// newest it got from this node, or the start of the window).
type contentFilter map[string]streamFilter

type streamFilter struct{ lo, mid, hi time.Time }

// wants reports whether a frame at t is to be shipped, and whether it is
// one of the window (lo, mid].
func (f streamFilter) wants(t time.Time) (ship, window bool) {
	if t.After(f.lo) && !t.After(f.mid) {
		return true, true
	}
	return t.After(f.hi), false
}

func ackKey(volume string, epoch uint64) string { return fmt.Sprintf("%s@%d", volume, epoch) }

// readAcks reads acks (or the receiver's refusal) and opens the window.
func (s *Sender) readAcks(c *conn, w *window) error {
	defer w.close()
	for {
		c.tc.SetReadDeadline(time.Now().Add(4*s.opts.Keepalive + 10*time.Second))
		f, err := readFrame(c.tc)
		if err != nil {
			return fmt.Errorf("read ack: %w", err)
		}
		switch f.Type {
		case msgAck:
			a, err := decodeAck(f.Payload)
			if err != nil {
				return err
			}
			w.acked(a.Seq)
			s.mu.Lock()
			s.acked[ackKey(c.reply.VolumeID, c.epoch)] = a.Pos
			s.st.Acked, s.st.AckedNewest = a.Pos, a.Newest
			s.mu.Unlock()
		case msgError:
			m, err := decodeError(f.Payload)
			if err != nil {
				return err
			}
			s.log.Warn("mirror: standby refused our messages", "peer", c.reply.NodeID, "code", m.Code, "reason", m.Text)
			return fmt.Errorf("standby %s refused (code %d): %s", c.reply.NodeID, m.Code, m.Text)
		default:
			return fmt.Errorf("%w: message type %d from the standby", ErrProtocol, f.Type)
		}
	}
}

// errPathChanged ends a session when Addr names another path.
var errPathChanged = errors.New("mirror: path to the standby changed")

// readAhead is how many records ship asks the store for at once (each at
// most 4 MiB of payload).
const readAhead = 8

// ship reads committed records after start and sends them in batches.
func (s *Sender) ship(ctx context.Context, c *conn, w *window, start ringstore.Position, filter contentFilter) error {
	pos := start
	var seq uint64
	var evicted time.Time
	lastSend := time.Now()
	send := func(b batch, size int) error {
		if err := w.wait(ctx, int64(size)); err != nil {
			return err
		}
		seq++
		b.Seq, b.Epoch, b.Evicted = seq, s.opts.Epoch(), evicted
		b.PrimaryNewest = s.Status().PrimaryNewest
		w.add(seq, int64(size))
		c.tc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := writeFrame(c.tc, c.version, msgBatch, b.encode(c.version)); err != nil {
			return fmt.Errorf("send batch %d: %w", seq, err)
		}
		lastSend = time.Now()
		evicted = time.Time{}
		s.mu.Lock()
		s.st.Batches++
		s.st.Records += uint64(len(b.Records))
		s.st.Bytes += uint64(size)
		s.mu.Unlock()
		return nil
	}
	for ctx.Err() == nil {
		recs, err := s.opts.Store.ReadAfter(pos, readAhead)
		if errors.Is(err, ringstore.ErrEvicted) {
			// The ring wrapped past the standby's position: continue
			// at the oldest record and let the standby mark the gap.
			// (By content the receiver's gap detection shows the hole:
			// the resume point is only an estimate.)
			if filter == nil {
				s.mu.Lock()
				evicted = s.st.AckedNewest
				s.mu.Unlock()
				if evicted.IsZero() {
					evicted = time.Unix(0, 1)
				}
				s.log.Warn("mirror: the ring evicted records the standby lacks; skipping to the oldest held", "from", pos)
			}
			pos = ringstore.Position{}
			continue
		}
		if err != nil {
			return fmt.Errorf("read store after %+v: %w", pos, err)
		}
		var b batch
		size := 0
		for i, r := range recs {
			if br, ok := shipped(r, filter); ok {
				b.Records = append(b.Records, br)
				size += len(br.Raw)
			}
			if len(b.Records) > 0 && (size >= s.opts.BatchBytes || i == len(recs)-1) {
				if err := send(b, size); err != nil {
					return err
				}
				b, size = batch{}, 0
			}
		}
		if len(recs) > 0 {
			pos = recs[len(recs)-1].Pos
			continue
		}
		if time.Since(lastSend) >= s.opts.Keepalive {
			if err := send(batch{}, 0); err != nil {
				return err
			}
			continue
		}
		s.caughtUp(w)
		if addr, ok := s.opts.Addr(); !ok || addr != c.addr {
			// The cluster moved the mirror to another path (the
			// dedicated link came back, or went down): reconnect there
			// and resume from the acknowledged position.
			s.log.Info("mirror: path to the standby changed; reconnecting", "from", c.addr, "to", addr)
			return errPathChanged
		}
		sleep(ctx, s.opts.Poll)
	}
	return ctx.Err()
}

// caughtUp records the lag baseline once everything shipped is acked and
// nothing more is to be read.
func (s *Sender) caughtUp(w *window) {
	if w.inFlight() > 0 {
		return
	}
	s.mu.Lock()
	at := s.st.Acked
	s.mu.Unlock()
	base := s.opts.Store.BytesAfter(at)
	s.mu.Lock()
	if s.st.Acked == at {
		s.base, s.baseAt = base, at
	}
	s.mu.Unlock()
}

// shipped says whether a record goes to the standby, and how.
func shipped(r ringstore.Record, filter contentFilter) (batchRecord, bool) {
	if r.Kind != ringstore.KindFrames || len(r.Frames) == 0 {
		return batchRecord{}, false
	}
	if _, _, bf := ringstore.SplitBackfillName(r.Stream); bf {
		return batchRecord{}, false // another node's footage kept here
	}
	br := batchRecord{Pos: r.Pos, Raw: r.Raw}
	f, ok := filter[r.Stream]
	if !ok {
		return br, true
	}
	any, window := false, false
	for _, fr := range r.Frames {
		ship, w := f.wants(fr.Time)
		any = any || ship
		window = window || w
	}
	if !any {
		return batchRecord{}, false
	}
	// The record goes whole (its CRC must stay intact); the receiver
	// applies the frames after After.
	br.After = f.hi
	if window {
		br.After = f.lo
	}
	return br, true
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// window bounds the bytes shipped but not acknowledged.
type window struct {
	limit  int64
	mu     sync.Mutex
	used   int64
	sizes  []seqSize
	change chan struct{}
	closed bool
}

type seqSize struct {
	seq  uint64
	size int64
}

func newWindow(limit int64) *window { return &window{limit: limit, change: make(chan struct{})} }

// wait returns when n more bytes fit (a batch always fits an empty window).
func (w *window) wait(ctx context.Context, n int64) error {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return errors.New("connection closed")
		}
		if w.used == 0 || w.used+n <= w.limit {
			w.mu.Unlock()
			return nil
		}
		ch := w.change
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (w *window) inFlight() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.used
}

func (w *window) add(seq uint64, n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.used += n
	w.sizes = append(w.sizes, seqSize{seq, n})
}

// acked frees the bytes of every batch up to seq.
func (w *window) acked(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := 0
	for ; i < len(w.sizes) && w.sizes[i].seq <= seq; i++ {
		w.used -= w.sizes[i].size
	}
	w.sizes = w.sizes[i:]
	close(w.change)
	w.change = make(chan struct{})
}

func (w *window) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.change)
	}
}
