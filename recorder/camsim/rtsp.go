package camsim

// This file is the only one that uses gortsplib: the RTSP server, its
// callbacks, the streams and the RTP packetizers. A move to another RTSP
// library (or gortsplib v5) touches this file only.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// RTP payload types the simulator uses.
const (
	videoPayloadType = 96
	aacPayloadType   = 97
	pcmuPayloadType  = 0
)

// rtspServer adapts the simulator to gortsplib's server and owns the
// bookkeeping of which connection and session reads which path.
type rtspServer struct {
	srv     *gortsplib.Server
	addr    string
	udpAddr string // RTP port address, "" without UDP
	lookup  func(name string) *path
	closing <-chan struct{}
	log     *slog.Logger

	mu       sync.Mutex
	sessions map[*gortsplib.ServerSession]*sessionInfo
	conns    map[*gortsplib.ServerConn]*path
}

type sessionInfo struct {
	path    *path
	playing bool // counted in path.playing
}

// startRTSP starts the RTSP server on opts' addresses; lookup finds a path
// by name (nil if unknown); closing is closed when the simulator shuts down,
// releasing requests held by the never-answer fault.
func startRTSP(opts *Options, lookup func(string) *path, closing <-chan struct{}) (*rtspServer, error) {
	r := &rtspServer{
		lookup:   lookup,
		closing:  closing,
		log:      opts.Logger,
		sessions: make(map[*gortsplib.ServerSession]*sessionInfo),
		conns:    make(map[*gortsplib.ServerConn]*path),
	}
	var methods []auth.VerifyMethod
	switch opts.Auth {
	case AuthBasic:
		methods = []auth.VerifyMethod{auth.VerifyMethodBasic}
	case AuthDigest:
		methods = []auth.VerifyMethod{auth.VerifyMethodDigestMD5}
	}
	r.srv = &gortsplib.Server{
		Handler:                  r,
		RTSPAddress:              opts.Address,
		ReadTimeout:              opts.ReadTimeout,
		WriteTimeout:             opts.WriteTimeout,
		WriteQueueSize:           1024,
		DisableRTCPSenderReports: true, // the paths send their own, and none while stalled
		AuthMethods:              methods,
	}
	if opts.MulticastIPRange != "" {
		port := opts.MulticastPort
		if port == 0 {
			port = 8002
		}
		if port%2 != 0 || port <= 0 || port >= 65535 {
			return nil, fmt.Errorf("%w: multicast RTP port %d: want an even port below 65535", ErrBadConfig, port)
		}
		r.srv.MulticastIPRange, r.srv.MulticastRTPPort, r.srv.MulticastRTCPPort = opts.MulticastIPRange, port, port+1
	}
	var ln net.Listener
	r.srv.Listen = func(network, address string) (net.Listener, error) {
		l, err := net.Listen(network, address)
		ln = l
		return l, err
	}
	var rtpConn, rtcpConn net.PacketConn
	if !opts.DisableUDP {
		var err error
		rtpConn, rtcpConn, err = listenUDPPair(opts.UDPAddress, opts.Address)
		if err != nil {
			return nil, err
		}
		r.srv.UDPRTPAddress = rtpConn.LocalAddr().String()
		r.srv.UDPRTCPAddress = rtcpConn.LocalAddr().String()
		r.udpAddr = r.srv.UDPRTPAddress
		r.srv.ListenPacket = func(network, address string) (net.PacketConn, error) {
			switch address {
			case r.srv.UDPRTPAddress:
				return rtpConn, nil
			case r.srv.UDPRTCPAddress:
				return rtcpConn, nil
			}
			return net.ListenPacket(network, address)
		}
	}
	if err := r.srv.Start(); err != nil {
		if rtpConn != nil {
			// gortsplib closes them only once it has started with them.
			rtpConn.Close()
			rtcpConn.Close()
		}
		return nil, fmt.Errorf("camsim: start RTSP server: %w", err)
	}
	r.addr = ln.Addr().String()
	return r, nil
}

// listenUDPPair binds the RTP port (even) and the RTCP port (RTP+1) gortsplib
// needs: at rtpAddr when set, else on a free pair on rtspAddr's host.
func listenUDPPair(rtpAddr, rtspAddr string) (net.PacketConn, net.PacketConn, error) {
	if rtpAddr != "" {
		host, port, err := net.SplitHostPort(rtpAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: UDP address %q: %w", ErrBadConfig, rtpAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p%2 != 0 || p <= 0 || p >= 65535 {
			return nil, nil, fmt.Errorf("%w: UDP RTP port %q must be even (RTCP uses the next one)", ErrBadConfig, port)
		}
		return listenPair(host, p)
	}
	host, _, err := net.SplitHostPort(rtspAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: address %q: %w", ErrBadConfig, rtspAddr, err)
	}
	const tries = 64
	for range tries {
		probe, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("camsim: listen UDP on %s: %w", host, err)
		}
		p := probe.LocalAddr().(*net.UDPAddr).Port
		if p%2 == 0 && p < 65535 {
			c2, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p+1)))
			if err == nil {
				return probe, c2, nil
			}
		}
		probe.Close()
	}
	return nil, nil, fmt.Errorf("camsim: no free UDP port pair on %s after %d tries", host, tries)
}

func listenPair(host string, port int) (net.PacketConn, net.PacketConn, error) {
	c1, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, nil, fmt.Errorf("camsim: listen UDP RTP: %w", err)
	}
	c2, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port+1)))
	if err != nil {
		c1.Close()
		return nil, nil, fmt.Errorf("camsim: listen UDP RTCP: %w", err)
	}
	return c1, c2, nil
}

// close stops the server and joins its goroutines; it closes every stream's
// readers.
func (r *rtspServer) close() { r.srv.Close() }

// dropPath closes every session and connection reading p.
func (r *rtspServer) dropPath(p *path) int {
	r.mu.Lock()
	var ss []*gortsplib.ServerSession
	var cs []*gortsplib.ServerConn
	for s, info := range r.sessions {
		if info.path == p {
			ss = append(ss, s)
		}
	}
	for c, cp := range r.conns {
		if cp == p {
			cs = append(cs, c)
		}
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
	for _, c := range cs {
		c.Close()
	}
	return len(ss) + len(cs)
}

// pathName turns a request path into a path name.
func pathName(p string) string {
	return strings.TrimPrefix(p, "/")
}

// OnConnClose forgets the connection.
func (r *rtspServer) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	r.mu.Lock()
	delete(r.conns, ctx.Conn)
	r.mu.Unlock()
}

// OnSessionClose forgets the session and stops counting it as a reader.
func (r *rtspServer) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	info := r.sessions[ctx.Session]
	delete(r.sessions, ctx.Session)
	r.mu.Unlock()
	if info != nil && info.playing {
		info.path.readerStopped()
		r.log.Info("camsim reader stopped", "path", info.path.name, "reason", ctx.Error)
	}
}

// OnRequest holds the first requests of a new connection to a path with the
// never-answer fault on, and closes new connections to a restarting path.
func (r *rtspServer) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	if sc.Session() != nil || req.URL == nil {
		return
	}
	name := pathName(req.URL.Path)
	p := r.lookup(name)
	if p == nil {
		if i := strings.LastIndexByte(name, '/'); i > 0 {
			p = r.lookup(name[:i])
		}
	}
	if p == nil {
		return
	}
	if drop := p.hold(r.closing); drop {
		sc.NetConn().Close()
	}
}

// OnResponse starts counting a session as a reader once its PLAY succeeded
// (gortsplib has made it an active reader of the stream by then).
func (r *rtspServer) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	if res.StatusCode != base.StatusOK {
		return
	}
	ss := sc.Session()
	if ss == nil || ss.State() != gortsplib.ServerSessionStatePlay {
		return
	}
	r.mu.Lock()
	info := r.sessions[ss]
	start := info != nil && !info.playing
	if start {
		info.playing = true
	}
	r.mu.Unlock()
	if start {
		info.path.readerStarted()
		tr := "?"
		if t := ss.SetuppedTransport(); t != nil {
			tr = t.String()
		}
		r.log.Info("camsim reader playing", "path", info.path.name, "remote", sc.NetConn().RemoteAddr().String(), "transport", tr)
	}
}

// OnDescribe serves the path's description after checking credentials.
func (r *rtspServer) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	p := r.lookup(pathName(ctx.Path))
	st := p.currentStream()
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if p.refuseAuthNow(ctx.Request.Header["Authorization"] != nil) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	if !r.authorized(ctx.Conn, ctx.Request, p) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	r.mu.Lock()
	r.conns[ctx.Conn] = p
	r.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, st.st, nil
}

// OnSetup attaches a reading session to the path's stream.
func (r *rtspServer) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil, errors.New("camsim: publishing is not supported")
	}
	p := r.lookup(pathName(ctx.Path))
	st := p.currentStream()
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if !r.authorized(ctx.Conn, ctx.Request, p) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	r.mu.Lock()
	r.conns[ctx.Conn] = p
	if _, ok := r.sessions[ctx.Session]; !ok {
		r.sessions[ctx.Session] = &sessionInfo{path: p}
	}
	r.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, st.st, nil
}

// OnPlay accepts; the session counts as a reader from OnResponse on.
func (r *rtspServer) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *rtspServer) authorized(sc *gortsplib.ServerConn, req *base.Request, p *path) bool {
	if p.cfg.User == "" {
		return true
	}
	return sc.VerifyCredentials(req, p.cfg.User, p.cfg.Pass)
}

// rtspStream is one path's stream: its tracks (video first, then audio if
// any) and the gortsplib stream its readers attach to.
type rtspStream struct {
	st     *gortsplib.ServerStream
	medias []*description.Media
}

// newStream creates the stream of a path serving video (and audio, may be nil).
func (r *rtspServer) newStream(video *videoClip, audio *audioClip) (*rtspStream, error) {
	var vf format.Format
	switch video.codec {
	case H264:
		vf = &format.H264{PayloadTyp: videoPayloadType, SPS: video.params[0], PPS: video.params[1], PacketizationMode: 1}
	default:
		vf = &format.H265{PayloadTyp: videoPayloadType, VPS: video.params[0], SPS: video.params[1], PPS: video.params[2]}
	}
	medias := []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{vf}}}
	if audio != nil {
		var af format.Format
		switch audio.codec {
		case AAC:
			af = &format.MPEG4Audio{
				PayloadTyp: aacPayloadType, ProfileLevelID: 1, Config: audio.config,
				SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
			}
		default:
			af = &format.G711{PayloadTyp: pcmuPayloadType, MULaw: true, SampleRate: pcmuRate, ChannelCount: 1}
		}
		medias = append(medias, &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{af}})
	}
	st := &gortsplib.ServerStream{Server: r.srv, Desc: &description.Session{Medias: medias}}
	if err := st.Initialize(); err != nil {
		return nil, fmt.Errorf("camsim: create stream: %w", err)
	}
	return &rtspStream{st: st, medias: medias}, nil
}

// writeRTP sends pkt on track to every playing reader; gortsplib sets the
// SSRC in pkt. ntp is the packet's capture time.
func (s *rtspStream) writeRTP(track int, pkt *rtp.Packet, ntp time.Time) error {
	return s.st.WritePacketRTPWithNTP(s.medias[track], pkt, ntp)
}

// writeRTCP sends pkt on track to every playing reader.
func (s *rtspStream) writeRTCP(track int, pkt rtcp.Packet) error {
	return s.st.WritePacketRTCP(s.medias[track], pkt)
}

// close disconnects the stream's readers.
func (s *rtspStream) close() { s.st.Close() }

// rtpPacketizer packetizes access units with gortsplib's encoders; the
// sequence numbers and timestamps it produces are discarded.
type rtpPacketizer struct {
	h264 *rtph264.Encoder
	h265 *rtph265.Encoder
	aac  *rtpmpeg4audio.Encoder
}

func newVideoPacketizer(codec VideoCodec) (*rtpPacketizer, error) {
	p := &rtpPacketizer{}
	var err error
	switch codec {
	case H264:
		p.h264 = &rtph264.Encoder{PayloadType: videoPayloadType, PacketizationMode: 1}
		err = p.h264.Init()
	case H265:
		p.h265 = &rtph265.Encoder{PayloadType: videoPayloadType}
		err = p.h265.Init()
	default:
		return nil, fmt.Errorf("%w: video codec %q", ErrBadConfig, codec)
	}
	if err != nil {
		return nil, fmt.Errorf("camsim: init packetizer: %w", err)
	}
	return p, nil
}

func newAACPacketizer() (*rtpPacketizer, error) {
	p := &rtpPacketizer{aac: &rtpmpeg4audio.Encoder{
		PayloadType: aacPayloadType, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
	}}
	if err := p.aac.Init(); err != nil {
		return nil, fmt.Errorf("camsim: init packetizer: %w", err)
	}
	return p, nil
}

// packetize returns the RTP payloads of one video access unit (H.264/H.265)
// or one AAC access unit.
func (p *rtpPacketizer) packetize(au [][]byte) ([]rtpTemplate, error) {
	var pkts []*rtp.Packet
	var err error
	switch {
	case p.h264 != nil:
		pkts, err = p.h264.Encode(au)
	case p.h265 != nil:
		pkts, err = p.h265.Encode(au)
	default:
		pkts, err = p.aac.Encode(au)
	}
	if err != nil {
		return nil, err
	}
	out := make([]rtpTemplate, len(pkts))
	for i, pk := range pkts {
		out[i] = rtpTemplate{payload: pk.Payload, marker: pk.Marker}
	}
	return out, nil
}
