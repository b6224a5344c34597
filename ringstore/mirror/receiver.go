package mirror

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// Fence checks the epoch of a mirror message: it returns an error for an
// epoch lower than the highest seen (and records a higher one).
// *cluster.Node satisfies it.
type Fence interface {
	CheckEpoch(what string, epoch uint64) error
}

// ErrStaleEpoch: a message carried an epoch below the highest seen (used
// when no Fence is given; a Fence returns its own error).
var ErrStaleEpoch = errors.New("mirror: stale epoch")

// ReceiverOptions configures a Receiver.
type ReceiverOptions struct {
	// Store is the standby's store (required).
	Store *ringstore.Store
	// NodeID is this node's ID (required).
	NodeID string
	// TLS is the server configuration (required): TLS 1.3 and client
	// certificates of the pair's CA (pairing.Bundle.ServerConfig).
	TLS *tls.Config
	// State keeps the received watermarks and the highest epoch; nil
	// keeps them in memory.
	State *State
	// Fence checks epochs (a *cluster.Node); nil uses State's epoch.
	Fence Fence
	// Standby reports whether this node may take footage now (the
	// cluster: it is the standby). Checked at each hello and batch; a
	// node that records itself must never append another's footage into
	// the same streams. nil means always.
	Standby func() bool
	// MaxVersion is the newest protocol version offered; 0 means
	// MaxVersion. Tests set Version1 to play firmware N-1.
	MaxVersion uint8
	// IdleTimeout drops a connection silent for this long; 0 means 10 s
	// (senders send a keepalive every second).
	IdleTimeout time.Duration
	// Logger receives refusals and connection events; nil discards them.
	Logger *slog.Logger
	// OnRefusal is called for every refused connection or message, with
	// its code (CodeStaleEpoch, CodeStoreFormat, ...; 0 for a failed TLS
	// handshake), so the appliance can raise an alarm. It must not block.
	// nil ignores them.
	OnRefusal func(code uint8, err error)
}

// Receiver is the standby's side: it accepts one sender at a time, checks
// every batch (epoch, sequence, record CRCs) before writing anything,
// appends the records into its store through a ringstore.Replica and
// acknowledges what its store made durable.
type Receiver struct {
	opts    ReceiverOptions
	log     *slog.Logger
	replica *ringstore.Replica
	restart [16]byte

	mu      sync.Mutex
	st      Status
	current context.CancelFunc // the active session's
	gen     uint64             // session counter
}

// NewReceiver validates opts and returns a Receiver.
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	if opts.Store == nil || opts.NodeID == "" || opts.TLS == nil {
		return nil, errors.New("mirror receiver: Store, NodeID and TLS are required")
	}
	if opts.TLS.MinVersion < tls.VersionTLS13 || opts.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("mirror receiver: TLS must require TLS 1.3 and verified client certificates")
	}
	if opts.MaxVersion == 0 {
		opts.MaxVersion = MaxVersion
	}
	if opts.MaxVersion < MinVersion || opts.MaxVersion > MaxVersion {
		return nil, fmt.Errorf("mirror receiver: MaxVersion %d outside %d..%d", opts.MaxVersion, MinVersion, MaxVersion)
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 10 * time.Second
	}
	if opts.State == nil {
		opts.State, _ = OpenState("")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opts: opts, log: log, replica: ringstore.NewReplica(opts.Store)}
	rand.Read(r.restart[:])
	return r, nil
}

// Status returns the receiver's figures.
func (r *Receiver) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	if !st.PrimaryNewest.IsZero() && st.PrimaryNewest.After(st.AckedNewest) {
		st.LagSeconds = st.PrimaryNewest.Sub(st.AckedNewest).Seconds()
	}
	return st
}

// Serve accepts senders on ln until ctx ends, then closes ln and every
// connection and returns once they are done. A new sender that passes the
// checks replaces the current one.
func (r *Receiver) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.handle(ctx, c)
		}()
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("mirror receiver: accept: %w", err)
}

// refusal is a reason to close a session, sent to the peer.
type refusal struct {
	code uint8
	err  error
}

func (e *refusal) Error() string { return e.err.Error() }
func (e *refusal) Unwrap() error { return e.err }

func refuse(code uint8, format string, args ...any) error {
	return &refusal{code: code, err: fmt.Errorf(format, args...)}
}

// session is one accepted connection.
type session struct {
	r       *Receiver
	conn    *tls.Conn
	wmu     sync.Mutex
	version uint8
	peer    hello
	lastSeq uint64
	evicted map[string]time.Time // streams to mark GapEvicted before their next frame
}

func (r *Receiver) handle(ctx context.Context, c net.Conn) {
	tc := tls.Server(c, r.opts.TLS)
	defer tc.Close()
	remote := c.RemoteAddr().String()
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	err := tc.HandshakeContext(hctx)
	hcancel()
	if err != nil {
		r.log.Warn("mirror: refused connection: TLS handshake failed (not a member of the pair?)", "remote", remote, "err", err)
		r.count(func(st *Status) { st.Refused++; st.LastError = "TLS handshake: " + err.Error() })
		if r.opts.OnRefusal != nil {
			r.opts.OnRefusal(0, err)
		}
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Now()) })
	defer stop()
	s := &session{r: r, conn: tc, evicted: map[string]time.Time{}}
	err = s.run(ctx, remote)
	var rf *refusal
	switch {
	case errors.As(err, &rf):
		r.log.Warn("mirror: refused sender: nothing written from the refused message", "remote", remote, "peer", s.peer.NodeID, "err", err)
		s.send(s.version, msgError, (&errorMsg{Code: rf.code, Text: rf.Error()}).encode())
		r.count(func(st *Status) { st.Refused++; st.LastError = err.Error() })
		if r.opts.OnRefusal != nil {
			r.opts.OnRefusal(rf.code, err)
		}
	case err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF):
		r.log.Info("mirror: sender connection ended", "remote", remote, "peer", s.peer.NodeID, "err", err)
		r.count(func(st *Status) { st.LastError = err.Error() })
	}
}

func (r *Receiver) count(fn func(*Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.st)
}

func (s *session) send(version, typ uint8, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if version == 0 {
		version = MinVersion
	}
	s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return writeFrame(s.conn, version, typ, payload)
}

func (s *session) read() (frame, error) {
	s.conn.SetReadDeadline(time.Now().Add(s.r.opts.IdleTimeout))
	return readFrame(s.conn)
}

// checkEpoch applies the fence to a message's epoch.
func (r *Receiver) checkEpoch(what string, epoch uint64) error {
	if r.opts.Fence != nil {
		if err := r.opts.Fence.CheckEpoch(what, epoch); err != nil {
			return refuse(CodeStaleEpoch, "%s: %w", what, err)
		}
		return nil
	}
	if hi := r.opts.State.Epoch(); epoch < hi {
		return refuse(CodeStaleEpoch, "%s from epoch %d, highest seen %d: %w", what, epoch, hi, ErrStaleEpoch)
	}
	if err := r.opts.State.update("", nil, epoch); err != nil {
		return refuse(CodeInternal, "%s: %w", what, err)
	}
	return nil
}

// run performs the hello exchange and then applies batches until the
// connection ends.
func (s *session) run(ctx context.Context, remote string) error {
	r := s.r
	f, err := s.read()
	if err != nil {
		return err
	}
	if f.Type != msgHello {
		return refuse(CodeProtocol, "first message of type %d, want hello", f.Type)
	}
	h, err := decodeHello(f.Payload)
	if err != nil {
		return refuse(CodeProtocol, "%w", err)
	}
	s.peer = h
	if cs := s.conn.ConnectionState(); len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != h.NodeID {
		return refuse(CodeProtocol, "hello names node %q, its certificate another", h.NodeID)
	}
	v := min(h.MaxVersion, r.opts.MaxVersion)
	if v < h.MinVersion || v < MinVersion {
		return refuse(CodeVersion, "sender %s speaks versions %d..%d, this node %d..%d", h.NodeID, h.MinVersion, h.MaxVersion, MinVersion, r.opts.MaxVersion)
	}
	s.version = v
	if h.StoreFormat > ringstore.FormatVersion {
		return refuse(CodeStoreFormat, "sender %s store format %d is newer than this firmware reads (%d): staying out of its data", h.NodeID, h.StoreFormat, ringstore.FormatVersion)
	}
	if err := r.checkEpoch("mirror hello", h.Epoch); err != nil {
		return err
	}
	if r.opts.Standby != nil && !r.opts.Standby() {
		return refuse(CodeNotStandby, "this node is not the standby: it takes no footage from %s", h.NodeID)
	}
	// This session replaces any other.
	r.mu.Lock()
	if r.current != nil {
		r.current()
	}
	sctx, cancel := context.WithCancel(ctx)
	r.current = cancel
	r.gen++
	gen := r.gen
	r.st.Connected, r.st.Peer, r.st.Addr, r.st.Version, r.st.Epoch = true, h.NodeID, remote, v, h.Epoch
	r.mu.Unlock()
	defer func() {
		cancel()
		r.mu.Lock()
		if r.gen == gen {
			r.st.Connected, r.current = false, nil
		}
		r.mu.Unlock()
	}()
	stop := context.AfterFunc(sctx, func() { s.conn.SetDeadline(time.Now()) })
	defer stop()
	// Footage of this node's own newer than anything from the peer: if the
	// peer recorded the same window, this part is what it lacks.
	if err := r.opts.State.noteOwn(h.NodeID, r.opts.Store.NewestByStream()); err != nil {
		return refuse(CodeInternal, "%w", err)
	}
	if err := s.send(v, msgHelloReply, s.reply().encode()); err != nil {
		return fmt.Errorf("send hello reply: %w", err)
	}
	r.log.Info("mirror: sender connected", "peer", h.NodeID, "remote", remote, "version", v, "epoch", h.Epoch)
	acks := make(chan pendingAck, 256)
	ackErr := make(chan error, 1)
	go func() {
		err := s.acker(sctx, acks)
		if err != nil {
			cancel() // the loop may be waiting to hand over an ack
		}
		ackErr <- err
	}()
	err = s.loop(sctx, acks)
	close(acks)
	if aerr := <-ackErr; err == nil {
		err = aerr
	}
	return err
}

// reply builds the hello reply: what this store holds per stream.
func (s *session) reply() *helloReply {
	r := s.r
	m := &helloReply{Version: s.version, StoreFormat: ringstore.FormatVersion, Epoch: s.peer.Epoch, NodeID: r.opts.NodeID, RestartID: r.restart, VolumeID: r.opts.Store.Volume().ID}
	newest := r.opts.Store.NewestByStream()
	from := r.opts.State.Received(s.peer.NodeID)
	names := map[string]bool{}
	for n := range newest {
		names[n] = true
	}
	for n := range from {
		names[n] = true
	}
	for n := range names {
		m.Streams = append(m.Streams, streamMark{Name: n, Newest: newest[n], FromYou: from[n]})
	}
	return m
}

// pendingAck is applied but not yet durable.
type pendingAck struct {
	seq    uint64
	pos    ringstore.Position
	newest map[string]time.Time
	bytes  int
}

// loop reads, checks and applies batches.
func (s *session) loop(ctx context.Context, acks chan<- pendingAck) error {
	var pos ringstore.Position
	for {
		f, err := s.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if f.Type == msgError {
			m, _ := decodeError(f.Payload)
			return fmt.Errorf("sender %s closed: %s", s.peer.NodeID, m.Text)
		}
		if f.Type != msgBatch || f.Version != s.version {
			return refuse(CodeProtocol, "message type %d version %d, want batches of version %d", f.Type, f.Version, s.version)
		}
		b, err := decodeBatch(f.Payload, s.version)
		if err != nil {
			return refuse(CodeProtocol, "%w", err)
		}
		recs, err := s.check(b)
		if err != nil {
			return err
		}
		pa := pendingAck{seq: b.Seq, pos: pos, newest: map[string]time.Time{}, bytes: len(f.Payload)}
		if err := s.apply(b, recs, &pa); err != nil {
			return refuse(CodeInternal, "apply batch %d: %w", b.Seq, err)
		}
		pos = pa.pos
		s.r.count(func(st *Status) {
			st.Batches++
			st.Records += uint64(len(recs))
			st.Bytes += uint64(len(f.Payload))
			st.Epoch = b.Epoch
			if b.PrimaryNewest.After(st.PrimaryNewest) {
				st.PrimaryNewest = b.PrimaryNewest
			}
		})
		select {
		case acks <- pa:
		case <-ctx.Done():
			return nil
		}
	}
}

// check verifies a batch before anything of it is written: sequence,
// every record's CRC, then epoch.
func (s *session) check(b batch) ([]ringstore.Record, error) {
	if s.r.opts.Standby != nil && !s.r.opts.Standby() {
		return nil, refuse(CodeNotStandby, "this node is no longer the standby: batch %d not taken", b.Seq)
	}
	if b.Seq <= s.lastSeq {
		return nil, refuse(CodeReplay, "batch sequence %d after %d: replayed or reordered", b.Seq, s.lastSeq)
	}
	recs := make([]ringstore.Record, len(b.Records))
	for i, br := range b.Records {
		rec, err := ringstore.DecodeRecord(br.Raw)
		if err != nil {
			return nil, refuse(CodeCorrupt, "batch %d record %d (position %d/%d) failed its check: %w", b.Seq, i, br.Pos.Gen, br.Pos.Offset, err)
		}
		if rec.Pos.Gen != br.Pos.Gen {
			return nil, refuse(CodeCorrupt, "batch %d record %d: generation %d, position says %d", b.Seq, i, rec.Pos.Gen, br.Pos.Gen)
		}
		rec.Pos = br.Pos
		recs[i] = rec
	}
	// Last: a fence records a higher epoch, which only a batch that passed
	// every other check may do.
	if err := s.r.checkEpoch("mirror batch", b.Epoch); err != nil {
		return nil, err
	}
	s.lastSeq = b.Seq
	return recs, nil
}

// apply appends a checked batch's records into the store.
func (s *session) apply(b batch, recs []ringstore.Record, pa *pendingAck) error {
	if !b.Evicted.IsZero() {
		for name, t := range s.r.opts.Store.NewestByStream() {
			s.evicted[name] = t
		}
		s.r.log.Warn("mirror: the primary's ring no longer holds what this node lacks: marking an evicted gap", "peer", s.peer.NodeID, "from", b.Evicted)
	}
	for i, rec := range recs {
		opts := ringstore.ApplyOptions{Source: s.peer.NodeID, After: b.Records[i].After}
		if t, ok := s.evicted[rec.Stream]; ok && rec.Kind == ringstore.KindFrames {
			if t.IsZero() {
				t = b.Evicted
			}
			opts.Gap = &ringstore.Gap{Start: t, Cause: ringstore.GapEvicted}
			delete(s.evicted, rec.Stream)
		}
		if _, err := s.r.replica.Apply(rec, opts); err != nil {
			return err
		}
		for _, f := range rec.Frames {
			if f.Time.After(opts.After) && f.Time.After(pa.newest[rec.Stream]) {
				pa.newest[rec.Stream] = f.Time
			}
		}
		pa.pos = rec.Pos
	}
	return nil
}

// acker acknowledges applied batches once the store made them durable,
// coalescing those that queued up meanwhile, and records the watermarks.
func (s *session) acker(ctx context.Context, acks <-chan pendingAck) error {
	r := s.r
	for pa := range acks {
		bytes := pa.bytes
	drain:
		for {
			select {
			case next, ok := <-acks:
				if !ok {
					break drain
				}
				for n, t := range pa.newest {
					if t.After(next.newest[n]) {
						next.newest[n] = t
					}
				}
				bytes += next.bytes
				pa = next
			default:
				break drain
			}
		}
		if err := r.opts.Store.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return refuse(CodeInternal, "store flush: %w", err)
		}
		if err := r.opts.State.update(s.peer.NodeID, pa.newest, 0); err != nil {
			r.log.Warn("mirror: could not save the received watermarks", "err", err)
		}
		var newest time.Time
		for _, t := range r.opts.State.Received(s.peer.NodeID) {
			if t.After(newest) {
				newest = t
			}
		}
		if err := s.send(s.version, msgAck, (&ack{Seq: pa.seq, Pos: pa.pos, Newest: newest}).encode()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("send ack: %w", err)
		}
		r.count(func(st *Status) { st.Acked, st.AckedNewest = pa.pos, newest })
	}
	return nil
}
