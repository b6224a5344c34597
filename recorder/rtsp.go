package recorder

// This file is the only one of package recorder that imports gortsplib: the
// RTSP client, depacketizers and RTCP timing all sit behind connector and
// camConn, so moving to another RTSP library touches this file alone.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/nvrfw/nvr/ringstore"
)

// trackInfo describes one elementary stream of a camera that is recorded.
type trackInfo struct {
	codec     ringstore.Codec
	clockRate int
	channels  int
	params    paramSets // video: parameter sets from the SDP (may be empty)
	config    []byte    // AAC: AudioSpecificConfig
}

// unit is one depacketized access unit of one track.
type unit struct {
	track int       // index into camConn.tracks()
	ts    uint32    // RTP timestamp
	ntp   time.Time // wall time from RTCP sender reports; zero when unknown
	recv  time.Time // local arrival time
	nalus [][]byte  // video NALUs (owned by the receiver)
	data  []byte    // audio access unit (owned by the receiver)
	// buf, when set, is the pooled buffer nalus are slices of, and pool
	// where it goes back (release) once the receiver no longer needs them.
	buf  []byte
	pool *framePool
}

// release gives the unit's buffer back to its pool; its NALUs must no
// longer be used.
func (u unit) release() {
	if u.buf != nil {
		u.pool.put(u.buf)
	}
}

// size is the unit's payload bytes, for queue accounting.
func (u unit) size() int64 {
	n := len(u.data)
	for _, b := range u.nalus {
		n += len(b)
	}
	return int64(n)
}

// connectConfig is what a connector needs to open one camera session.
type connectConfig struct {
	url         string
	transport   Transport
	readTimeout time.Duration
	userAgent   string
	now         func() time.Time
	// deliver receives every access unit, from the connection's own
	// goroutines (several at once with UDP); it may block.
	deliver func(unit)
	// decodeError reports RTP that could not be depacketized and lost packets.
	decodeError func(error)
}

// connector opens camera sessions: DESCRIBE, SETUP of the recordable
// tracks, PLAY. The production one is gortsplibConnector.
type connector interface {
	connect(ctx context.Context, cfg connectConfig) (camConn, error)
}

// camConn is one playing camera session.
type camConn interface {
	tracks() []trackInfo
	// done is closed when the session ended by itself (error, timeout).
	done() <-chan struct{}
	// err is why it ended; valid after done is closed.
	err() error
	// close ends the session and waits for its goroutines. Idempotent.
	close()
}

// errNoTracks: the camera offers no track the recorder can store.
var errNoTracks = errors.New("camera offers no H.264/H.265 video or AAC/G.711/Opus audio track")

// gortsplibConnector opens sessions with gortsplib, the video of TCP
// sessions taking the fast path (tcpdemux.go) with buffers from pool (nil:
// one pool per session).
type gortsplibConnector struct {
	pool *framePool
}

func (gc gortsplibConnector) connect(ctx context.Context, cfg connectConfig) (camConn, error) {
	u, err := base.ParseURL(cfg.url)
	if err != nil {
		return nil, fmt.Errorf("parse camera URL: %w", err)
	}
	tr := gortsplib.TransportTCP
	switch cfg.transport {
	case TransportUDP:
		tr = gortsplib.TransportUDP
	case TransportMulticast:
		tr = gortsplib.TransportUDPMulticast
	}
	conn := &gortsplibConn{doneCh: make(chan struct{}), tcp: tr == gortsplib.TransportTCP, pool: gc.pool}
	if conn.pool == nil {
		conn.pool = &framePool{}
	}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  cfg.readTimeout,
		WriteTimeout: cfg.readTimeout,
		Transport:    &tr,
		UserAgent:    cfg.userAgent,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			dc, err := dialDemux(ctx, network, address, cfg.readTimeout)
			if err != nil {
				return nil, err
			}
			conn.demux.Store(dc)
			return dc, nil
		},
		OnTransportSwitch: func(error) {},
		OnPacketsLost: func(n uint64) {
			cfg.decodeError(fmt.Errorf("%d RTP packets lost", n))
		},
		OnDecodeError: func(err error) { cfg.decodeError(err) },
	}
	if err := c.Start2(); err != nil {
		return nil, fmt.Errorf("start RTSP client: %w", err)
	}
	conn.c = c
	// The client is closed when ctx ends (also during DESCRIBE/SETUP/PLAY),
	// without a goroutine per camera waiting for it.
	conn.wg.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer conn.wg.Done()
		c.Close()
	})
	conn.stopWatch = func() {
		if stop() {
			conn.wg.Done() // the close never ran and never will
		}
	}
	conn.wg.Add(1)
	go func() {
		defer conn.wg.Done()
		conn.e = sessionError(c.Wait())
		close(conn.doneCh)
	}()
	if err := conn.start(u, cfg); err != nil {
		conn.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return conn, nil
}

type gortsplibConn struct {
	c *gortsplib.Client
	// tcp: RTP comes interleaved in the RTSP connection, demux, whose
	// fast path then takes the video track's frames (tcpdemux.go).
	tcp       bool
	demux     atomic.Pointer[demuxConn]
	pool      *framePool
	ts        []trackInfo
	stopWatch func() // stops closing the client when ctx ends
	doneCh    chan struct{}
	e         error
	once      sync.Once
	wg        sync.WaitGroup
}

func (g *gortsplibConn) tracks() []trackInfo   { return g.ts }
func (g *gortsplibConn) done() <-chan struct{} { return g.doneCh }
func (g *gortsplibConn) err() error            { return g.e }

// sessionError classifies why gortsplib ended a playing session: its read
// timeouts (no RTP nor RTCP for ReadTimeout while the connection stayed
// open) are stalls.
func sessionError(err error) error {
	var tcp liberrors.ErrClientTCPTimeout
	var udp liberrors.ErrClientUDPTimeout
	if errors.As(err, &tcp) || errors.As(err, &udp) {
		return fmt.Errorf("%w: %w", ErrStall, err)
	}
	return err
}

func (g *gortsplibConn) close() {
	g.once.Do(func() {
		g.stopWatch()
		g.c.Close()
		g.wg.Wait()
	})
}

// start describes the stream, sets up the first recordable video and audio
// tracks and plays.
func (g *gortsplibConn) start(u *base.URL, cfg connectConfig) error {
	desc, _, err := g.c.Describe(u)
	if err != nil {
		return fmt.Errorf("DESCRIBE: %w", err)
	}
	var haveVideo, haveAudio bool
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			info, handle, ok := recordable(f)
			if !ok || (info.codec.IsVideo() && haveVideo) || (!info.codec.IsVideo() && haveAudio) {
				continue
			}
			res, err := g.c.Setup(desc.BaseURL, m, 0, 0)
			if err != nil {
				return fmt.Errorf("SETUP %s track: %w", info.codec, err)
			}
			idx := len(g.ts)
			g.ts = append(g.ts, info)
			haveVideo = haveVideo || info.codec.IsVideo()
			haveAudio = haveAudio || !info.codec.IsVideo()
			clk := &senderClock{rate: info.clockRate}
			g.c.OnPacketRTCP(m, clk.handleRTCP)
			g.c.OnPacketRTP(m, f, g.packetHandler(clk, handle, idx, cfg))
			if info.codec.IsVideo() && g.tcp {
				g.startFastPath(res, m, f, clk, info, idx, cfg)
			}
			break
		}
	}
	if len(g.ts) == 0 {
		return errNoTracks
	}
	if _, err := g.c.Play(nil); err != nil {
		return fmt.Errorf("PLAY: %w", err)
	}
	return nil
}

// startFastPath makes the RTSP connection hand the video track's RTP
// frames to a videoAssembler instead of gortsplib (tcpdemux.go). Without
// the interleaved channel in the SETUP reply, it leaves the track to
// gortsplib. gortsplib's own callback stays registered: it gets the frames
// again if the fast path switches itself off.
func (g *gortsplibConn) startFastPath(res *base.Response, m *description.Media, f format.Format, clk *senderClock, info trackInfo, idx int, cfg connectConfig) {
	dc := g.demux.Load()
	if dc == nil || res == nil {
		return
	}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil || th.InterleavedIDs == nil {
		return
	}
	pts := make(map[uint8]bool, len(m.Formats))
	for _, mf := range m.Formats {
		pts[mf.PayloadType()] = true
	}
	fp := &fastPath{asm: newVideoAssembler(info.codec, g.pool), clk: clk, track: idx,
		pt: f.PayloadType(), mediaPTs: pts, cfg: cfg}
	dc.setFast(th.InterleavedIDs[0], fp.packet)
}

// fastPath depacketizes the RTP of one video track read by demuxConn. It
// checks what gortsplib's receiver checks before its decoder: the payload
// type, one SSRC, lost sequence numbers.
type fastPath struct {
	asm      *videoAssembler
	clk      *senderClock
	track    int
	pt       uint8
	mediaPTs map[uint8]bool
	cfg      connectConfig

	haveFirst bool
	ssrc      uint32
	seq       uint16
}

// packet takes one RTP packet, valid only during the call.
func (p *fastPath) packet(pkt []byte) {
	defer func() {
		if r := recover(); r != nil {
			p.cfg.decodeError(fmt.Errorf("depacketizer panicked on RTP packet: %v", r))
		}
	}()
	if len(pkt) >= 12 {
		pt := pkt[1] & 0x7f
		if pt != p.pt {
			if !p.mediaPTs[pt] {
				p.cfg.decodeError(fmt.Errorf("received RTP packet with unknown payload type %d", pt))
			}
			return
		}
		ssrc := binary.BigEndian.Uint32(pkt[8:12])
		seq := binary.BigEndian.Uint16(pkt[2:4])
		if p.haveFirst {
			if ssrc != p.ssrc {
				p.cfg.decodeError(fmt.Errorf("received packet with wrong SSRC %d, expected %d", ssrc, p.ssrc))
				return
			}
			if lost := seq - p.seq - 1; lost != 0 {
				p.cfg.decodeError(fmt.Errorf("%d RTP packets lost", lost))
			}
		}
		p.haveFirst, p.ssrc, p.seq = true, ssrc, seq
	}
	if err := p.asm.push(pkt, p.emit); err != nil {
		p.cfg.decodeError(err)
	}
}

func (p *fastPath) emit(u unit) {
	u.track = p.track
	u.recv = p.cfg.now()
	u.ntp = p.clk.at(p.asm.ssrc(), u.ts)
	p.cfg.deliver(u)
}

// depacketize turns one RTP packet into zero or more units (without track,
// ntp and recv, which the caller fills in).
type depacketize func(pkt *rtp.Packet) ([]unit, error)

// recordable reports whether format f can be recorded and how.
func recordable(f format.Format) (trackInfo, depacketize, bool) {
	switch f := f.(type) {
	case *format.H264:
		d, err := f.CreateDecoder()
		if err != nil {
			return trackInfo{}, nil, false
		}
		info := trackInfo{codec: ringstore.CodecH264, clockRate: 90000, params: paramSets{sps: f.SPS, pps: f.PPS}}
		var au auTimestamp
		return info, func(pkt *rtp.Packet) ([]unit, error) {
			nalus, err := d.Decode(pkt)
			if err != nil {
				if errors.Is(err, rtph264.ErrMorePacketsNeeded) {
					au.pending(pkt.Timestamp)
					return nil, nil
				}
				au.reset()
				if errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
					return nil, nil
				}
				return nil, err
			}
			return []unit{{ts: au.complete(pkt.Timestamp), nalus: nalus}}, nil
		}, true
	case *format.H265:
		d, err := f.CreateDecoder()
		if err != nil {
			return trackInfo{}, nil, false
		}
		info := trackInfo{codec: ringstore.CodecH265, clockRate: 90000, params: paramSets{vps: f.VPS, sps: f.SPS, pps: f.PPS}}
		var au auTimestamp
		return info, func(pkt *rtp.Packet) ([]unit, error) {
			var out []unit
			if au.have && au.ts != pkt.Timestamp {
				// The previous access unit never got its marker bit (the
				// H.265 decoder does not split by timestamp): end it with
				// a marked access unit delimiter, dropped again here.
				end := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, Timestamp: au.ts,
					SequenceNumber: pkt.SequenceNumber - 1, SSRC: pkt.SSRC, PayloadType: pkt.PayloadType}, Payload: h265EndMarker}
				if nalus, err := d.Decode(end); err == nil && len(nalus) > 1 {
					out = append(out, unit{ts: au.ts, nalus: nalus[:len(nalus)-1]})
				}
				au.reset()
			}
			nalus, err := d.Decode(pkt)
			if err != nil {
				if errors.Is(err, rtph265.ErrMorePacketsNeeded) {
					au.pending(pkt.Timestamp)
					return out, nil
				}
				au.reset()
				if errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
					return out, nil
				}
				return out, err
			}
			au.reset()
			return append(out, unit{ts: pkt.Timestamp, nalus: nalus}), nil
		}, true
	case *format.MPEG4Audio:
		return aacDepacketizer(f)
	case *format.MPEG4AudioLATM:
		return latmDepacketizer(f)
	case *format.G711:
		d, err := f.CreateDecoder()
		if err != nil {
			return trackInfo{}, nil, false
		}
		codec := ringstore.CodecPCMA
		if f.MULaw {
			codec = ringstore.CodecPCMU
		}
		info := trackInfo{codec: codec, clockRate: f.ClockRate(), channels: f.ChannelCount}
		return info, func(pkt *rtp.Packet) ([]unit, error) {
			b, err := d.Decode(pkt)
			if err != nil {
				return nil, err
			}
			return []unit{{ts: pkt.Timestamp, data: clone(b)}}, nil
		}, true
	case *format.Opus:
		d, err := f.CreateDecoder()
		if err != nil {
			return trackInfo{}, nil, false
		}
		info := trackInfo{codec: ringstore.CodecOpus, clockRate: 48000, channels: f.ChannelCount}
		return info, func(pkt *rtp.Packet) ([]unit, error) {
			b, err := d.Decode(pkt)
			if err != nil {
				return nil, err
			}
			return []unit{{ts: pkt.Timestamp, data: clone(b)}}, nil
		}, true
	}
	return trackInfo{}, nil, false
}

func aacDepacketizer(f *format.MPEG4Audio) (trackInfo, depacketize, bool) {
	if f.Config == nil {
		return trackInfo{}, nil, false
	}
	asc, err := f.Config.Marshal()
	if err != nil {
		return trackInfo{}, nil, false
	}
	d, err := f.CreateDecoder()
	if err != nil {
		return trackInfo{}, nil, false
	}
	spf := aacSamplesPerFrame(f.Config.FrameLengthFlag)
	info := trackInfo{codec: ringstore.CodecAAC, clockRate: f.ClockRate(), channels: f.Config.ChannelCount, config: asc}
	return info, func(pkt *rtp.Packet) ([]unit, error) {
		aus, err := d.Decode(pkt)
		if err != nil {
			if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				return nil, nil
			}
			return nil, err
		}
		return audioUnits(pkt.Timestamp, spf, aus), nil
	}, true
}

func latmDepacketizer(f *format.MPEG4AudioLATM) (trackInfo, depacketize, bool) {
	asc, smc, ok := latmConfig(f.CPresent, f.StreamMuxConfig)
	if !ok {
		return trackInfo{}, nil, false
	}
	d, err := f.CreateDecoder()
	if err != nil {
		return trackInfo{}, nil, false
	}
	info := trackInfo{codec: ringstore.CodecAAC, clockRate: f.ClockRate(), channels: asc.ChannelCount}
	info.config, err = asc.Marshal()
	if err != nil {
		return trackInfo{}, nil, false
	}
	spf := aacSamplesPerFrame(asc.FrameLengthFlag)
	return info, func(pkt *rtp.Packet) ([]unit, error) {
		el, err := d.Decode(pkt)
		if err != nil {
			return nil, nil //nolint:nilerr // more packets needed or a broken fragment: rtpfragmented resets itself
		}
		aus, err := latmAccessUnits(smc, el)
		if err != nil {
			return nil, err
		}
		return audioUnits(pkt.Timestamp, spf, aus), nil
	}, true
}

// h265EndMarker is an H.265 access unit delimiter NALU, used to end an
// access unit whose last packet lacked the marker bit.
var h265EndMarker = []byte{0x46, 0x01, 0x50}

// auTimestamp tracks the RTP timestamp of the H.264 access unit being
// assembled. gortsplib's H.264 decoder also ends an access unit when the
// timestamp changes (cameras that never set the marker bit): the unit it then
// returns is the previous one, with the previous packet's timestamp.
type auTimestamp struct {
	ts   uint32
	have bool
}

// pending records that an access unit with timestamp ts is being assembled.
func (a *auTimestamp) pending(ts uint32) {
	if !a.have {
		a.ts, a.have = ts, true
	}
}

// complete returns the timestamp of the access unit the decoder returned
// for a packet with timestamp ts.
func (a *auTimestamp) complete(ts uint32) uint32 {
	if a.have && a.ts != ts {
		// Split by timestamp: the returned unit is the previous one; the
		// packet started the next, still buffered in the decoder.
		prev := a.ts
		a.ts = ts
		return prev
	}
	a.have = false
	return ts
}

func (a *auTimestamp) reset() { a.have = false }

// audioUnits spreads the access units of one packet over consecutive frame
// times.
func audioUnits(ts uint32, samplesPerFrame uint32, aus [][]byte) []unit {
	out := make([]unit, 0, len(aus))
	for i, au := range aus {
		out = append(out, unit{ts: ts + uint32(i)*samplesPerFrame, data: clone(au)})
	}
	return out
}

// packetHandler returns the RTP callback of one track: depacketize, stamp
// and deliver. It runs on gortsplib's goroutines, so it recovers from
// panics in the depacketizers (bytes from the camera) and reports them as
// decode errors instead of taking the process down.
//
// The NALUs the video depacketizers return are handed on without a copy:
// gortsplib v4 allocates every received packet's payload afresh (TCP
// interleaved frames and UDP datagrams alike) and its H.264/H.265 decoders
// join fragments into new buffers and never reuse an access unit they
// returned (TestUnitsOwnTheirBytes holds it to that).
func (g *gortsplibConn) packetHandler(clk *senderClock, dec depacketize, idx int, cfg connectConfig) func(*rtp.Packet) {
	return func(pkt *rtp.Packet) {
		defer func() {
			if r := recover(); r != nil {
				cfg.decodeError(fmt.Errorf("depacketizer panicked on RTP packet: %v", r))
			}
		}()
		units, err := dec(pkt)
		if err != nil {
			cfg.decodeError(err)
			return
		}
		if len(units) == 0 {
			return
		}
		recv := cfg.now()
		for _, u := range units {
			u.track = idx
			u.recv = recv
			u.ntp = clk.at(pkt.SSRC, u.ts)
			cfg.deliver(u)
		}
	}
}

// senderClock maps one track's RTP timestamps to the camera's wall clock
// with its latest RTCP sender report. gortsplib v4's own mapping
// (Client.PacketNTP) reads the NTP fraction as nanoseconds instead of
// 1/2^32 s (its issue 869), which puts frames up to 3.3 s off; this one
// decodes it as RFC 3550 says. Reports arrive on the RTCP goroutine
// (another one than RTP's with UDP), hence the mutex.
type senderClock struct {
	rate int

	mu   sync.Mutex
	have bool
	ssrc uint32
	ntp  time.Time
	rtp  uint32
}

// handleRTCP takes the sender reports among a compound RTCP packet's parts.
func (c *senderClock) handleRTCP(pkt rtcp.Packet) {
	sr, ok := pkt.(*rtcp.SenderReport)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.have, c.ssrc, c.ntp, c.rtp = true, sr.SSRC, ntpToTime(sr.NTPTime), sr.RTPTime
}

// at returns the wall time of RTP timestamp ts of source ssrc, or zero
// before a sender report of that source arrived.
func (c *senderClock) at(ssrc, ts uint32) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.have || c.ssrc != ssrc || c.rate <= 0 {
		return time.Time{}
	}
	d := int64(int32(ts - c.rtp)) // |d| < 2^31: d*1e9 fits in int64
	return c.ntp.Add(time.Duration(d * int64(time.Second) / int64(c.rate)))
}

// ntpEpoch is 1900-01-01 (NTP era 0) in Unix seconds.
const ntpEpoch = -2208988800

// ntpToTime decodes a 64-bit NTP timestamp (RFC 3550 section 4: seconds
// since 1900 and a fraction in units of 2^-32 s). Seconds below 2^31 are
// taken as NTP era 1 (from February 2036 on), as RFC 4330 suggests.
func ntpToTime(v uint64) time.Time {
	sec := int64(v >> 32)
	if sec < 1<<31 {
		sec += 1 << 32
	}
	frac := v & 0xffffffff
	nsec := int64((frac*1e9 + 1<<31) >> 32)
	return time.Unix(sec+ntpEpoch, nsec)
}
