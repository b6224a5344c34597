package camsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors callers act on.
var (
	// ErrBadConfig: an Options, PathConfig or Fault value is invalid.
	ErrBadConfig = errors.New("camsim: bad configuration")
	// ErrNoPath: no path has that name.
	ErrNoPath = errors.New("camsim: no such path")
	// ErrPathExists: AddPath with a name already served.
	ErrPathExists = errors.New("camsim: path already exists")
	// ErrClosed: the simulator is closed.
	ErrClosed = errors.New("camsim: simulator closed")
)

// AuthMode selects the HTTP-style authentication schemes offered to clients
// of paths that have credentials.
type AuthMode string

// Authentication modes.
const (
	AuthAny    AuthMode = ""       // basic and digest (MD5), the client picks
	AuthBasic  AuthMode = "basic"  // basic only
	AuthDigest AuthMode = "digest" // digest (MD5) only
)

// Options configure a Simulator. The zero value is a valid configuration.
type Options struct {
	// Address is the RTSP (TCP) listen address. Default "127.0.0.1:8554";
	// port 0 picks a free port (see Simulator.Addr).
	Address string
	// UDPAddress is the UDP RTP listen address; its port must be even, and
	// RTCP uses the next one. Default: a free port pair on Address's host.
	UDPAddress string
	// DisableUDP offers only the TCP (interleaved) transport.
	DisableUDP bool
	// MulticastIPRange, when set (e.g. "239.77.0.0/16"), also offers UDP
	// multicast: each path's stream is sent to a group from the range, RTP
	// on MulticastPort (even; default 8002) and RTCP on the next port. The
	// host needs a multicast route (224.0.0.0/4) on a multicast-capable
	// interface.
	MulticastIPRange string
	MulticastPort    int
	// ControlAddress, when set, serves the HTTP control endpoint there
	// (see ControlHandler). Default: no control endpoint.
	ControlAddress string
	// ClipDir holds the clips (testdata/clips of the repository). Default:
	// the nearest testdata/clips found walking up from the working
	// directory, so tests and "nvrd camsim" run from the repository work
	// without setting it.
	ClipDir string
	// Auth selects the authentication schemes offered. Default AuthAny.
	Auth AuthMode
	// SenderReportPeriod is the interval of RTCP sender reports per track;
	// one is also sent as soon as a reader starts playing. Default 5 s.
	SenderReportPeriod time.Duration
	// FrameHistory is how many sent video frames each path remembers for
	// SentFrames (about 64 bytes each, allocated as frames are sent).
	// Default 1500 (60 s at 25 fps); negative keeps none.
	FrameHistory int
	// ReadTimeout and WriteTimeout bound RTSP reads and writes. Default 10 s.
	ReadTimeout, WriteTimeout time.Duration
	// Logger receives session and fault events. Default: discard.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultAddress            = "127.0.0.1:8554"
	DefaultSenderReportPeriod = 5 * time.Second
	DefaultFrameHistory       = 1500
)

// PathConfig configures one served path (camera).
type PathConfig struct {
	// Video is the video codec. Default H264.
	Video VideoCodec
	// Audio is the audio codec. Default AudioNone.
	Audio AudioCodec
	// Bitrate is the target video bitrate in bit/s, counted as access unit
	// bytes the way the store keeps them (each NAL unit plus a 4-byte
	// length), reached by adding filler NAL units to every frame. Default 0:
	// the clip's own rate (about 0.5 Mbit/s); a target below it is an error.
	Bitrate int64
	// User and Pass, when User is set, are required to read the path.
	User, Pass string
}

func (c *PathConfig) validate() error {
	if c.Video == "" {
		c.Video = H264
	}
	if c.Audio == "" {
		c.Audio = AudioNone
	}
	if _, ok := videoClipFiles[c.Video]; !ok {
		return fmt.Errorf("%w: video codec %q (want h264 or h265)", ErrBadConfig, c.Video)
	}
	switch c.Audio {
	case AudioNone, AAC, PCMU:
	default:
		return fmt.Errorf("%w: audio codec %q (want none, aac or pcmu)", ErrBadConfig, c.Audio)
	}
	if c.Bitrate < 0 {
		return fmt.Errorf("%w: negative bitrate", ErrBadConfig)
	}
	if c.User == "" && c.Pass != "" {
		return fmt.Errorf("%w: password without user", ErrBadConfig)
	}
	return nil
}

// Simulator serves looping test clips as RTSP cameras, with fault switches.
type Simulator struct {
	opts    Options
	log     *slog.Logger
	clips   map[VideoCodec][2]*videoClip
	aac     *audioClip
	pcmu    *audioClip
	closing chan struct{}

	mu         sync.Mutex
	paths      map[string]*path
	videoLoops map[loopKey]*videoLoop
	audioLoops map[AudioCodec]*audioLoop
	rtsp       *rtspServer
	ctx        context.Context
	cancel     context.CancelFunc
	control    *http.Server
	controlLn  net.Listener
	controlErr chan error
	state      simState
}

type simState uint8

const (
	stateNew simState = iota
	stateRunning
	stateClosed
)

type loopKey struct {
	codec   VideoCodec
	alt     int
	bitrate int64
}

// New loads the clips and returns a simulator with no paths, not yet
// listening.
func New(opts Options) (*Simulator, error) {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	switch opts.Auth {
	case AuthAny, AuthBasic, AuthDigest:
	default:
		return nil, fmt.Errorf("%w: auth mode %q", ErrBadConfig, opts.Auth)
	}
	if opts.SenderReportPeriod == 0 {
		opts.SenderReportPeriod = DefaultSenderReportPeriod
	} else if opts.SenderReportPeriod < 0 {
		return nil, fmt.Errorf("%w: negative sender report period", ErrBadConfig)
	}
	if opts.FrameHistory == 0 {
		opts.FrameHistory = DefaultFrameHistory
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := findClipDir(opts.ClipDir)
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		opts: opts, log: opts.Logger,
		clips:      make(map[VideoCodec][2]*videoClip),
		closing:    make(chan struct{}),
		paths:      make(map[string]*path),
		videoLoops: make(map[loopKey]*videoLoop),
		audioLoops: make(map[AudioCodec]*audioLoop),
	}
	for codec, files := range videoClipFiles {
		var pair [2]*videoClip
		for i, f := range files {
			if pair[i], err = loadVideoClip(dir, f, codec); err != nil {
				return nil, err
			}
		}
		s.clips[codec] = pair
	}
	if s.aac, err = loadAACClip(dir); err != nil {
		return nil, err
	}
	if s.pcmu, err = pcmuClip(); err != nil {
		return nil, err
	}
	return s, nil
}

// videoLoop returns the shared packetized loop for a clip and bitrate,
// building it on first use. Call with s.mu held.
func (s *Simulator) videoLoopLocked(codec VideoCodec, alt int, bitrate int64) (*videoLoop, error) {
	k := loopKey{codec, alt, bitrate}
	if l := s.videoLoops[k]; l != nil {
		return l, nil
	}
	pz, err := newVideoPacketizer(codec)
	if err != nil {
		return nil, err
	}
	l, err := buildVideoLoop(s.clips[codec][alt], bitrate, pz)
	if err != nil {
		return nil, err
	}
	s.videoLoops[k] = l
	return l, nil
}

// audioLoopLocked returns the shared packetized audio loop. Call with s.mu held.
func (s *Simulator) audioLoopLocked(codec AudioCodec) (*audioLoop, error) {
	if l := s.audioLoops[codec]; l != nil {
		return l, nil
	}
	var l *audioLoop
	switch codec {
	case AAC:
		pz, err := newAACPacketizer()
		if err != nil {
			return nil, err
		}
		l = &audioLoop{clip: s.aac}
		for i, au := range s.aac.aus {
			pkts, err := pz.packetize([][]byte{au})
			if err != nil || len(pkts) != 1 {
				return nil, fmt.Errorf("camsim: packetize AAC unit %d: %d packets: %w", i, len(pkts), err)
			}
			l.pkts = append(l.pkts, pkts[0])
		}
	case PCMU:
		l = &audioLoop{clip: s.pcmu, pkts: []rtpTemplate{{payload: s.pcmu.aus[0]}}}
	}
	s.audioLoops[codec] = l
	return l, nil
}

// AddPath serves a new path named name (the RTSP URL's path without the
// leading slash, e.g. "cam1" or "Streaming/Channels/101"). Its timeline
// starts when the simulator starts, or now if it runs.
func (s *Simulator) AddPath(name string, cfg PathConfig) error {
	if err := validPathName(name); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("path %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosed {
		return ErrClosed
	}
	if s.paths[name] != nil {
		return fmt.Errorf("%w: %s", ErrPathExists, name)
	}
	var loops [2]*videoLoop
	for alt := range loops {
		l, err := s.videoLoopLocked(cfg.Video, alt, cfg.Bitrate)
		if err != nil {
			return fmt.Errorf("path %s: %w", name, err)
		}
		loops[alt] = l
	}
	var audio *audioLoop
	if cfg.Audio != AudioNone {
		var err error
		if audio, err = s.audioLoopLocked(cfg.Audio); err != nil {
			return fmt.Errorf("path %s: %w", name, err)
		}
	}
	p := newPath(name, cfg, loops, audio, s.opts.FrameHistory, s.opts.SenderReportPeriod)
	if s.state == stateRunning {
		if err := s.startPathLocked(p); err != nil {
			return err
		}
	}
	s.paths[name] = p
	s.log.Debug("camsim path added", "path", name, "video", cfg.Video, "audio", cfg.Audio,
		"bitrate", loops[0].bitrate, "auth", cfg.User != "")
	return nil
}

// startPathLocked creates p's stream and starts its pump. Call with s.mu held
// and the RTSP server running.
func (s *Simulator) startPathLocked(p *path) error {
	var ac *audioClip
	if p.audio != nil {
		ac = p.audio.clip
	}
	st, err := s.rtsp.newStream(p.loops[0].clip, ac)
	if err != nil {
		return fmt.Errorf("path %s: %w", p.name, err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	p.mu.Lock()
	if p.cancel != nil { // already running (concurrent restarts)
		p.mu.Unlock()
		cancel()
		st.close()
		return nil
	}
	p.stream = st
	p.cancel = cancel
	done := make(chan struct{})
	p.done = done
	p.mu.Unlock()
	go p.run(ctx, st, done)
	return nil
}

// stopPath stops p's pump, releases held requests and closes its stream
// (disconnecting its readers). Call without s.mu held.
func stopPath(p *path) {
	p.mu.Lock()
	st, cancel, done := p.stream, p.cancel, p.done
	p.stream, p.cancel, p.done = nil, nil, nil
	p.releaseHeldLocked(true)
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	st.close()
}

// restartPath simulates a camera reboot: p stops (its readers are dropped),
// refuses new connections for down, and starts again with a new stream
// (new SSRCs), new random RTP bases, the main clip from its first frame, and
// no faults on.
func (s *Simulator) restartPath(p *path, down time.Duration) error {
	stopPath(p)
	p.mu.Lock()
	p.downUntil = time.Now().Add(down)
	p.stallOn, p.stallUntil = false, time.Time{}
	p.jumpRTP, p.jumpNTP = 0, 0
	p.switchClip, p.clipIdx = false, 0
	p.malformed, p.refuseAuth = 0, false
	p.mu.Unlock()
	p.stats.restarts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateRunning || s.paths[p.name] != p {
		return nil
	}
	return s.startPathLocked(p)
}

// RemovePath stops serving a path and disconnects its readers.
func (s *Simulator) RemovePath(name string) error {
	s.mu.Lock()
	p := s.paths[name]
	delete(s.paths, name)
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %s", ErrNoPath, name)
	}
	stopPath(p)
	s.log.Info("camsim path removed", "path", name)
	return nil
}

// Paths returns the served path names, sorted.
func (s *Simulator) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.paths))
	for n := range s.paths {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *Simulator) lookup(name string) *path {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths[name]
}

// Start listens and starts every path's timeline. When ctx is done the
// paths stop sending (connections stay open); Close stops everything and
// must be called in any case, also after Start failed.
func (s *Simulator) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return fmt.Errorf("camsim: already started")
	case stateClosed:
		return ErrClosed
	}
	r, err := startRTSP(&s.opts, s.lookup, s.closing)
	if err != nil {
		return err
	}
	s.rtsp = r
	s.ctx, s.cancel = context.WithCancel(ctx)
	if s.opts.ControlAddress != "" {
		ln, err := net.Listen("tcp", s.opts.ControlAddress)
		if err != nil {
			s.cancel()
			r.close()
			return fmt.Errorf("camsim: listen control endpoint: %w", err)
		}
		s.controlLn = ln
		s.control = &http.Server{Handler: s.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.controlErr = make(chan error, 1)
		go func() { s.controlErr <- s.control.Serve(ln) }()
	}
	s.state = stateRunning
	for _, p := range s.paths {
		if err := s.startPathLocked(p); err != nil {
			s.state = stateClosed // Close cleans up what started
			return err
		}
	}
	s.log.Info("camsim listening", "rtsp", r.addr, "udp", r.udpAddr, "control", s.controlAddrLocked(), "paths", len(s.paths))
	return nil
}

// Close stops every path, the control endpoint and the RTSP server, and
// joins their goroutines. It is idempotent.
func (s *Simulator) Close() error {
	s.mu.Lock()
	if s.state == stateClosed && s.cancel == nil {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosed
	cancel, r, control := s.cancel, s.rtsp, s.control
	s.cancel = nil
	paths := make([]*path, 0, len(s.paths))
	for _, p := range s.paths {
		paths = append(paths, p)
	}
	s.mu.Unlock()
	close(s.closing)
	for _, p := range paths {
		stopPath(p)
	}
	var err error
	if control != nil {
		ctx, done := context.WithTimeout(context.Background(), time.Second)
		_ = control.Shutdown(ctx)
		done()
		if e := <-s.controlErr; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("camsim: control endpoint: %w", e)
		}
	}
	if r != nil {
		r.close()
	}
	if cancel != nil {
		cancel()
	}
	return err
}

// Addr returns the RTSP listen address ("" before Start).
func (s *Simulator) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rtsp == nil {
		return ""
	}
	return s.rtsp.addr
}

// ControlAddr returns the control endpoint's address ("" when none).
func (s *Simulator) ControlAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.controlAddrLocked()
}

func (s *Simulator) controlAddrLocked() string {
	if s.controlLn == nil {
		return ""
	}
	return s.controlLn.Addr().String()
}

// URL returns the rtsp:// URL of a path, without credentials.
func (s *Simulator) URL(name string) string {
	return "rtsp://" + s.Addr() + "/" + name
}

// validPathName accepts names usable as the path of an rtsp:// URL: not
// empty, no leading or trailing slash, no empty segment, no space, control
// character, '?', '#' or '%', and no "trackID=" (gortsplib's SETUP suffix).
func validPathName(name string) error {
	bad := name == "" || name[0] == '/' || name[len(name)-1] == '/' ||
		strings.Contains(name, "//") || strings.Contains(name, "trackID=")
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '?' || r == '#' || r == '%' {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("%w: path name %q", ErrBadConfig, name)
	}
	return nil
}
