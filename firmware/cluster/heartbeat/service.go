package heartbeat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Path is one route to the peer.
type Path struct {
	// Name shows in status and logs ("dedicated", "lan").
	Name string
	// Local is the UDP address to bind (ip:port).
	Local string
	// Peer is the peer's UDP address on this path (ip:port).
	Peer string
}

// Options configures a Service.
type Options struct {
	// NodeID names this node; required.
	NodeID string
	// Key is the pair's HMAC key; required, at least 16 bytes.
	Key []byte
	// Paths in order of preference (dedicated link first); 1 to 8 required.
	// Both nodes must list them in the same order: the path's index is on
	// the wire, so a datagram captured on one path is refused on another.
	Paths []Path
	// FirmwareVersion is sent to the peer; default "dev".
	FirmwareVersion string
	// ConfigHash returns the hash of the running configuration; nil sends zeros.
	ConfigHash func() [32]byte
	// Epoch returns this node's highest committed epoch; nil means 0.
	Epoch func() uint64
	// Interval between heartbeats on each path; default 100 ms.
	Interval time.Duration
	// DeadAfter is how long without an accepted heartbeat a path is down;
	// default 10 × Interval.
	DeadAfter time.Duration
	// BindRetry is how often a path whose address cannot be bound is
	// retried; default 2 s.
	BindRetry time.Duration
	// Logger receives refusals (rate limited) and path up/down; nil discards.
	Logger *slog.Logger
}

// Service sends and receives heartbeats. Make it with New, run it with Run.
type Service struct {
	opts    Options
	log     *slog.Logger
	restart [16]byte
	start   time.Time

	mu        sync.Mutex
	paths     []*pathState
	peer      peerState
	refusals  map[string]*refusalLog
	highEpoch uint64
}

type pathState struct {
	Path
	idx     uint8
	conn    *net.UDPConn
	peer    *net.UDPAddr
	seq     uint64
	win     [256]uint64 // win[s%256] == s when s was accepted
	high    uint64
	lastAt  time.Time
	lastMsg *Message
	rtt     time.Duration
	up      bool
	recv    uint64
	refused uint64
}

type peerState struct {
	id       string
	restart  [16]byte
	retired  [][16]byte
	firmware string
	version  uint8
	config   [32]byte
	epoch    uint64
	seen     bool
}

type refusalLog struct {
	last       time.Time
	suppressed int
}

// New validates opts and returns a Service.
func New(opts Options) (*Service, error) {
	if opts.NodeID == "" || len(opts.NodeID) > MaxIDLen {
		return nil, errors.New("heartbeat: NodeID required (at most 64 bytes)")
	}
	if len(opts.Key) < 16 {
		return nil, errors.New("heartbeat: Key must be at least 16 bytes")
	}
	if len(opts.Paths) == 0 || len(opts.Paths) > 8 {
		return nil, fmt.Errorf("heartbeat: %d paths, want 1 to 8", len(opts.Paths))
	}
	if opts.FirmwareVersion == "" {
		opts.FirmwareVersion = "dev"
	}
	if len(opts.FirmwareVersion) > MaxIDLen {
		return nil, errors.New("heartbeat: FirmwareVersion longer than 64 bytes")
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = 10 * opts.Interval
	}
	if opts.BindRetry <= 0 {
		opts.BindRetry = 2 * time.Second
	}
	s := &Service{opts: opts, log: opts.Logger, start: time.Now(), refusals: map[string]*refusalLog{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, err := rand.Read(s.restart[:]); err != nil {
		return nil, fmt.Errorf("heartbeat: restart identity: %w", err)
	}
	for i, p := range opts.Paths {
		ua, err := net.ResolveUDPAddr("udp", p.Peer)
		if err != nil {
			return nil, fmt.Errorf("heartbeat: path %s peer %q: %w", p.Name, p.Peer, err)
		}
		s.paths = append(s.paths, &pathState{Path: p, idx: uint8(i), peer: ua})
	}
	return s, nil
}

// Restart returns this process's restart identity.
func (s *Service) Restart() [16]byte { return s.restart }

func (s *Service) mono() int64 { return int64(time.Since(s.start)) }

// Run binds every path, sends and receives until ctx is done, and returns
// after every goroutine it started has ended. A path whose local address
// cannot be bound yet (its link still coming up) is retried every BindRetry
// while the others run.
func (s *Service) Run(ctx context.Context) error {
	for _, p := range s.paths {
		if _, err := net.ResolveUDPAddr("udp", p.Local); err != nil {
			return fmt.Errorf("heartbeat: path %s local %q: %w", p.Name, p.Local, err)
		}
	}
	var wg sync.WaitGroup
	for _, p := range s.paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.servePath(ctx, p)
		}()
	}
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	buf := make([]byte, 0, MaxWireLen)
	for {
		for _, p := range s.paths {
			buf = s.send(p, buf[:0])
		}
		s.updateLiveness()
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// servePath binds p (retrying) and reads it until ctx is done.
func (s *Service) servePath(ctx context.Context, p *pathState) {
	la, _ := net.ResolveUDPAddr("udp", p.Local)
	var c *net.UDPConn
	for {
		var err error
		if c, err = net.ListenUDP("udp", la); err == nil {
			break
		}
		s.log.Warn("heartbeat: cannot bind path yet; retrying", "path", p.Name, "local", p.Local, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.BindRetry):
		}
	}
	s.mu.Lock()
	p.conn = c
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s.readLoop(p, c)
	s.mu.Lock()
	p.conn = nil
	s.mu.Unlock()
}

func (s *Service) epoch() uint64 {
	if s.opts.Epoch == nil {
		return 0
	}
	return s.opts.Epoch()
}

func (s *Service) send(p *pathState, buf []byte) []byte {
	s.mu.Lock()
	p.seq++
	m := Message{
		Version: ProtocolVersion, Path: p.idx, Epoch: s.epoch(), Restart: s.restart,
		Seq: p.seq, SentNanos: s.mono(), NodeID: s.opts.NodeID, Firmware: s.opts.FirmwareVersion,
	}
	if s.opts.ConfigHash != nil {
		m.ConfigHash = s.opts.ConfigHash()
	}
	if p.lastMsg != nil {
		m.EchoSeq, m.EchoSent, m.EchoHold = p.lastMsg.Seq, p.lastMsg.SentNanos, int64(time.Since(p.lastAt))
	}
	conn := p.conn
	s.mu.Unlock()
	if conn == nil {
		return buf
	}
	out, err := m.Marshal(buf, s.opts.Key)
	if err != nil {
		return buf
	}
	// Send errors (link down, no route) are expected during faults; the
	// peer's liveness shows them.
	_, _ = conn.WriteToUDP(out, p.peer)
	return out
}

func (s *Service) readLoop(p *pathState, c *net.UDPConn) {
	buf := make([]byte, MaxWireLen+1)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.receive(p, buf[:n], from, time.Now())
	}
}

// receive authenticates and accounts one datagram.
func (s *Service) receive(p *pathState, b []byte, from net.Addr, now time.Time) {
	m, err := Unmarshal(b, s.opts.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		reason := "malformed"
		if errors.Is(err, ErrBadMAC) {
			reason = "bad MAC (wrong pair key or tampered)"
		}
		s.refuse(p, reason, from, nil)
		return
	}
	if reason := s.check(p, m); reason != "" {
		s.refuse(p, reason, from, m)
		return
	}
	if m.Restart != s.peer.restart || !s.peer.seen {
		if s.peer.seen {
			s.peer.retired = append(s.peer.retired, s.peer.restart)
			if len(s.peer.retired) > 8 {
				s.peer.retired = s.peer.retired[1:]
			}
			s.log.Info("heartbeat: peer restarted", "peer", m.NodeID, "path", p.Name)
			for _, q := range s.paths {
				q.win, q.high, q.lastMsg = [256]uint64{}, 0, nil
			}
		}
		s.peer.restart, s.peer.seen = m.Restart, true
	}
	s.peer.id, s.peer.firmware, s.peer.version, s.peer.config = m.NodeID, m.Firmware, m.Version, m.ConfigHash
	if m.Epoch > s.peer.epoch {
		s.peer.epoch = m.Epoch
	}
	if m.Epoch > s.highEpoch {
		s.highEpoch = m.Epoch
	}
	p.win[m.Seq%256] = m.Seq
	if m.Seq > p.high {
		p.high = m.Seq
		p.lastMsg, p.lastAt = m, now
	}
	p.recv++
	if m.EchoSeq != 0 && m.EchoSent > 0 {
		rtt := time.Duration(s.mono() - m.EchoSent - m.EchoHold)
		if rtt >= 0 {
			if p.rtt == 0 {
				p.rtt = rtt
			} else {
				p.rtt = (7*p.rtt + rtt) / 8
			}
		}
	}
	if !p.up {
		p.up = true
		s.log.Info("heartbeat: path up", "path", p.Name, "peer", m.NodeID)
	}
}

// check returns why m must be refused, or "".
func (s *Service) check(p *pathState, m *Message) string {
	switch {
	case m.NodeID == s.opts.NodeID:
		return "names this node (loop or spoof)"
	case int(m.Path) != int(p.idx):
		return fmt.Sprintf("sent for path %d, arrived on path %d (cross-path replay)", m.Path, p.idx)
	}
	for _, r := range s.peer.retired {
		if r == m.Restart {
			return "stale restart identity (replay from an earlier process)"
		}
	}
	if s.peer.seen && m.Restart == s.peer.restart {
		if m.Seq+256 <= p.high {
			return fmt.Sprintf("old sequence %d (newest %d)", m.Seq, p.high)
		}
		if p.win[m.Seq%256] == m.Seq {
			return fmt.Sprintf("replayed sequence %d", m.Seq)
		}
	}
	if high := max(s.highEpoch, s.epoch()); m.Epoch < high {
		return fmt.Sprintf("old epoch %d (highest seen %d)", m.Epoch, high)
	}
	return ""
}

// refuse counts and logs a refusal, at most once a second per reason kind.
func (s *Service) refuse(p *pathState, reason string, from net.Addr, m *Message) {
	p.refused++
	kind := reason
	if i := indexDigit(reason); i > 0 {
		kind = reason[:i]
	}
	r := s.refusals[kind]
	if r == nil {
		r = &refusalLog{}
		s.refusals[kind] = r
	}
	if time.Since(r.last) < time.Second {
		r.suppressed++
		return
	}
	args := []any{"path", p.Name, "from", from.String(), "reason", reason}
	if m != nil {
		args = append(args, "sender", m.NodeID, "epoch", m.Epoch, "seq", m.Seq)
	}
	if r.suppressed > 0 {
		args = append(args, "suppressed", r.suppressed)
	}
	s.log.Warn("heartbeat refused", args...)
	r.last, r.suppressed = time.Now(), 0
}

func indexDigit(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return i
		}
	}
	return -1
}

func (s *Service) updateLiveness() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.paths {
		if p.up && time.Since(p.lastAt) > s.opts.DeadAfter {
			p.up = false
			s.log.Warn("heartbeat: path down", "path", p.Name, "silent_for", time.Since(p.lastAt).Round(time.Millisecond))
		}
	}
}
