package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Stream kinds: the first byte a dialer writes after the TLS handshake.
const (
	muxRaft    byte = 'R'
	muxControl byte = 'C'
)

// handshakeTimeout bounds an inbound TLS handshake plus the kind byte.
const handshakeTimeout = 2 * time.Second

// streamLayer is raft's StreamLayer over mutual TLS 1.3 with the pair's
// keys. Inbound connections are demultiplexed by their first byte: raft
// streams go to Accept, control calls to the control handler.
type streamLayer struct {
	ln      net.Listener
	server  *tls.Config
	client  *tls.Config
	control func(net.Conn)

	raftConns chan net.Conn
	done      chan struct{}
	connMu    sync.Mutex
	conns     map[*trackedConn]struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newStreamLayer(bind string, server, client *tls.Config, control func(net.Conn)) (*streamLayer, error) {
	if server.MinVersion < tls.VersionTLS13 || client.MinVersion < tls.VersionTLS13 {
		return nil, errors.New("cluster: transport needs TLS 1.3 configurations")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen on %s: %w", bind, err)
	}
	s := &streamLayer{ln: ln, server: server, client: client, control: control,
		raftConns: make(chan net.Conn), done: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.route(c)
		}()
	}
}

func (s *streamLayer) route(c net.Conn) {
	tc := tls.Server(c, s.server)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	var kind [1]byte
	if err := tc.Handshake(); err != nil {
		c.Close()
		return
	}
	if _, err := tc.Read(kind[:]); err != nil {
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	switch kind[0] {
	case muxRaft:
		tracked, ok := s.track(tc)
		if !ok {
			return
		}
		select {
		case s.raftConns <- tracked:
		case <-s.done:
			tc.Close()
		}
	case muxControl:
		if s.control != nil {
			s.control(tc)
		}
		tc.Close()
	default:
		tc.Close()
	}
}

// Accept returns the next inbound raft stream.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.raftConns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; it is idempotent. Wait joins the goroutines.
func (s *streamLayer) Close() error {
	s.closeOnce.Do(func() {
		s.connMu.Lock()
		close(s.done)
		s.ln.Close()
		for c := range s.conns {
			c.Conn.Close()
		}
		s.connMu.Unlock()
	})
	return nil
}

// trackedConn is a raft stream that Close ends: hashicorp/raft's
// NetworkTransport leaves pooled and accepted connections open on Close.
type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.connMu.Lock()
		delete(c.s.conns, c)
		c.s.connMu.Unlock()
	})
	return c.Conn.Close()
}

// track registers c, or closes it and reports false once the layer is closed.
func (s *streamLayer) track(c net.Conn) (net.Conn, bool) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	select {
	case <-s.done:
		c.Close()
		return nil, false
	default:
	}
	t := &trackedConn{Conn: c, s: s}
	s.conns[t] = struct{}{}
	return t, true
}

func (s *streamLayer) wait() { s.wg.Wait() }

// Addr is the listening address.
func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial opens an authenticated raft stream to address.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := s.dial(string(address), muxRaft, timeout)
	if err != nil {
		return nil, err
	}
	t, ok := s.track(c)
	if !ok {
		return nil, net.ErrClosed
	}
	return t, nil
}

func (s *streamLayer) dial(address string, kind byte, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.client}
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s: %w", address, err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster: dial %s: %w", address, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}
