package recorder

// The TCP read path of a camera session: batched socket reads, and the fast
// path that takes the video track's interleaved RTP frames out of the byte
// stream before the RTSP client sees them.
//
// gortsplib v4 reads RTSP over TCP through a 4 KiB bufio.Reader, allocates
// every interleaved frame's payload afresh, unmarshals it into a new
// rtp.Packet, and its H.264/H.265 decoders join fragments into new buffers
// again: at 100 cameras a third of the recorder's CPU was garbage
// collection of those packets. demuxConn sits under gortsplib as its
// net.Conn. It follows the framing of the stream exactly as gortsplib's
// reader does (interleaved frames, RTSP responses and requests with their
// Content-Length bodies, stray bytes gortsplib skips), hands the video
// track's RTP frames to a videoAssembler straight from its read buffer (one
// copy of each byte, into a pooled buffer per access unit), and gives
// gortsplib everything else, byte for byte: RTSP replies, RTCP (sender
// reports for the wall clock), audio.
//
// gortsplib's only liveness check for a playing TCP session is the time of
// the last interleaved frame it read. While the fast path takes the RTP
// frames, demuxConn therefore hands gortsplib, at most once a second, an
// empty RTCP receiver report (8 bytes, no report blocks) on the track's
// RTCP channel in the camera's SSRC: gortsplib counts it as a frame and
// passes it to the RTCP callback, which ignores all but sender reports.
// Nothing is sent to the camera: gortsplib sends no receiver reports over
// TCP.
//
// Whenever the stream is not what gortsplib would parse (a header block too
// large for the buffer, a malformed status line, a bad Content-Length),
// demuxConn stops parsing and hands over every byte from there on as it
// came: gortsplib sees the original stream and fails or not as it always
// did. The fast path is an optimization that can switch itself off, never
// a second parser with its own opinion.

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// Read batching. A camera's RTP over TCP arrives one ~1.4 kB interleaved
// packet at a time; read as it comes, every packet costs the reader a wake
// up and a read system call (about 360 a second for a 4 Mbit/s camera),
// which was most of the recorder's CPU. demuxConn reads the socket into a
// larger buffer and, when a read returned little, first waits for the next
// tick of a readPause grid (the same for all connections, so that the
// runtime wakes once for all of them) so the kernel gathers more: some ten
// packets per system call at 4 Mbit/s, for at most readPause of added
// latency. A read that filled half the
// buffer or more is followed at once by the next one, so a camera of any
// bitrate is read as fast as it sends.
const (
	readBatchSize = 32 << 10
	readPause     = 20 * time.Millisecond
	// maxDemuxBuffer holds the largest interleaved frame (4 + 65535
	// bytes) and any RTSP header block a camera really sends; the buffer
	// grows to it only when a frame or header needs it.
	maxDemuxBuffer = 4 + 65535 + 1
	// keepaliveEvery is how often, at most, gortsplib is shown a frame
	// while the fast path takes the RTP. gortsplib keeps the time of the
	// last frame in whole seconds and checks it every second, so it can
	// see a keepalive up to a period plus a second late: dialDemux makes
	// the period a quarter of the read timeout when that is shorter.
	keepaliveEvery = time.Second
)

// Limits of gortsplib v4.16.2's RTSP message reader (pkg/base), mirrored so
// that demuxConn frames messages as it does. Each limit counts the field's
// delimiter, as its readBytesLimited does.
const (
	rtspMaxResponseProto   = 255
	rtspMaxResponseCode    = 4
	rtspMaxResponseMessage = 255
	rtspMaxRequestMethod   = 64
	rtspMaxRequestURL      = 2048
	rtspMaxRequestProto    = 64
	rtspMaxHeaderCount     = 255
	rtspMaxHeaderKey       = 512 - 1
	rtspMaxHeaderValue     = 2048
	rtspMaxContentLength   = 128 * 1024
)

// dialDemux is the RTSP client's dialer: a TCP connection whose reads are
// batched and demultiplexed, for a client with the given read timeout.
func dialDemux(ctx context.Context, network, address string, readTimeout time.Duration) (*demuxConn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	dc := newDemuxConn(c, readBatchSize, readPause)
	if readTimeout > 0 {
		dc.keepalive = min(dc.keepalive, readTimeout/4)
	}
	return dc, nil
}

// fastTrack is the interleaved channel whose frames the fast path takes.
type fastTrack struct {
	channel byte
	// handle gets each frame's payload, valid only during the call.
	handle func(payload []byte)
}

// demuxConn is a net.Conn whose reads are served from a buffer filled by
// batched reads of the underlying connection, minus the frames of the fast
// track, plus the keepalives shown to gortsplib. Writes, deadlines and
// Close go to the underlying connection. Like net.Conn reads, Read is for
// one goroutine; setFast may be called from another.
type demuxConn struct {
	net.Conn
	buf   []byte
	r, w  int
	err   error // of the last fill, returned once buf is drained
	pause time.Duration
	short bool      // the last fill returned less than half the buffer
	last  time.Time // when the last fill returned

	fast atomic.Pointer[fastTrack]
	// pass is how many bytes of the current message go to gortsplib
	// before the next message boundary.
	pass int
	scan messageScan // of the message at the boundary, until it is whole
	// off: the framing was lost or refused; every byte goes to gortsplib.
	off atomic.Bool
	// inject holds a keepalive frame still to hand to gortsplib.
	inject      []byte
	injectBuf   [12]byte
	lastInject  time.Time     // when the last keepalive was queued
	ssrc        [4]byte       // of the last RTP frame taken
	framesTaken uint64        // for tests
	keepalive   time.Duration // 0: none (tests)

	now   func() time.Time
	sleep func(time.Duration)
}

func newDemuxConn(c net.Conn, size int, pause time.Duration) *demuxConn {
	return &demuxConn{Conn: c, buf: make([]byte, size), pause: pause, keepalive: keepaliveEvery, now: time.Now, sleep: time.Sleep}
}

// setFast makes the frames of an interleaved channel go to handle instead
// of gortsplib, from the next message boundary on. Call it before PLAY.
func (c *demuxConn) setFast(channel int, handle func(payload []byte)) bool {
	if channel < 0 || channel > 254 || handle == nil {
		return false
	}
	c.fast.Store(&fastTrack{channel: byte(channel), handle: handle})
	return true
}

// active reports whether the fast path still parses the stream.
func (c *demuxConn) active() bool { return !c.off.Load() }

// boundary is what demuxConn found at a message boundary.
type boundary uint8

const (
	needMore  boundary = iota // not enough bytes buffered to decide
	passOn                    // the next n bytes go to gortsplib
	takeFrame                 // a frame of the fast track, n bytes long, is buffered whole
	lost                      // not what gortsplib would parse: stop parsing
)

// Read copies the bytes gortsplib is to see to p, filling the buffer first
// when it has none.
func (c *demuxConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.inject) > 0 {
			n := copy(p, c.inject)
			c.inject = c.inject[n:]
			return n, nil
		}
		if c.r < c.w {
			if c.off.Load() {
				return c.give(p, c.w-c.r), nil
			}
			if c.pass > 0 {
				n := c.give(p, min(c.pass, c.w-c.r))
				c.pass -= n
				return n, nil
			}
			kind, n := c.next()
			switch kind {
			case passOn:
				c.pass = n
				continue
			case takeFrame:
				c.take(c.buf[c.r : c.r+n])
				c.r += n
				continue
			case lost:
				c.off.Store(true)
				continue
			}
			// needMore: a partial message; when the stream ended under it,
			// gortsplib gets the rest as it came.
			if c.err != nil || c.w-c.r >= maxDemuxBuffer {
				c.off.Store(true)
				continue
			}
		} else if c.err != nil {
			err := c.err
			c.err = nil
			return 0, err
		}
		if n, err := c.fill(); n == 0 && err != nil && c.r == c.w {
			c.err = nil
			return 0, err
		}
	}
}

// give copies up to n buffered bytes to p.
func (c *demuxConn) give(p []byte, n int) int {
	n = copy(p, c.buf[c.r:c.r+n])
	c.r += n
	return n
}

// fill reads the socket into the buffer after what it holds, compacting or
// growing the buffer when a partial message needs room. It waits readPause
// first when the last read was short.
func (c *demuxConn) fill() (int, error) {
	switch {
	case c.r == c.w:
		c.r, c.w = 0, 0
	case c.r > 0:
		// The start of a message: move it to the front, so that the
		// read that completes it is a whole batch too.
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	case c.w == len(c.buf):
		grown := make([]byte, min(2*len(c.buf), maxDemuxBuffer))
		c.w = copy(grown, c.buf[:c.w])
		c.buf = grown
	}
	if c.short {
		now := c.now()
		if c.pause-now.Sub(c.last) > 0 {
			// Wake at the next tick of a grid of the wall clock with the
			// pause as its step, the same for every connection: the
			// runtime then wakes once for all the cameras, not once for
			// each. A step of the wall clock costs one pause at most.
			wall := now.Round(0)
			c.sleep(min(wall.Truncate(c.pause).Add(c.pause).Sub(wall), c.pause))
		}
	}
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	c.err = err
	c.short = n < len(c.buf)/2
	c.last = c.now()
	return n, err
}

// take hands one frame of the fast track (header included) to its handler
// and, at most once every c.keepalive, queues a keepalive for gortsplib.
func (c *demuxConn) take(frame []byte) {
	payload := frame[4:]
	if len(payload) >= 12 {
		copy(c.ssrc[:], payload[8:12])
	}
	c.framesTaken++
	c.fast.Load().handle(payload)
	if c.keepalive > 0 && (c.lastInject.IsZero() || c.last.Sub(c.lastInject) >= c.keepalive) {
		c.lastInject = c.last
		b := c.injectBuf[:]
		// '$', the RTCP channel, length 8; RTCP version 2, no report
		// blocks, type 201 (receiver report), length 1 word after the
		// first; the sender's SSRC.
		b[0], b[1], b[2], b[3] = '$', frame[1]+1, 0, 8
		b[4], b[5], b[6], b[7] = 0x80, 201, 0, 1
		copy(b[8:12], c.ssrc[:])
		c.inject = b
	}
}

// next looks at the buffered bytes at a message boundary and says what
// comes next, the way gortsplib's conn.Read decides: an interleaved frame
// ('$'), a response ("RT"), a request (one of its method prefixes), or a
// byte it skips.
func (c *demuxConn) next() (boundary, int) {
	b := c.buf[c.r:c.w]
	if b[0] == '$' {
		if len(b) < 4 {
			return needMore, 0
		}
		n := 4 + (int(b[2])<<8 | int(b[3]))
		if ft := c.fast.Load(); ft != nil && ft.channel == b[1] {
			if len(b) < n {
				return needMore, 0
			}
			return takeFrame, n
		}
		return passOn, n
	}
	// Bytes gortsplib skips one by one: pass a run of them at once.
	i := 0
	for ; i < len(b); i++ {
		if b[i] == '$' {
			break
		}
		if i+1 == len(b) {
			if !canStartRTSP(b[i]) {
				i++
			} else if i == 0 {
				return needMore, 0
			}
			break
		}
		if rtspStart(b[i], b[i+1]) != 0 {
			break
		}
	}
	if i > 0 {
		return passOn, i
	}
	n, ok := rtspMessageLength(b, rtspStart(b[0], b[1]) == 'R', &c.scan)
	switch {
	case !ok:
		return lost, 0
	case n == 0:
		return needMore, 0
	}
	c.scan = messageScan{}
	return passOn, n
}

// canStartRTSP reports whether a byte is the first of a response or
// request start (rtspStart).
func canStartRTSP(a byte) bool {
	switch a {
	case 'R', 'A', 'D', 'G', 'O', 'P', 'S', 'T':
		return true
	}
	return false
}

// rtspStart classifies the two bytes gortsplib peeks at a message
// boundary: 'R' a response, 'Q' a request, 0 neither.
func rtspStart(a, b byte) byte {
	if a == 'R' && b == 'T' {
		return 'R'
	}
	switch string([]byte{a, b}) {
	case "AN", "DE", "GE", "OP", "PA", "PL", "RE", "SE", "TE":
		return 'Q'
	}
	return 0
}

// messageScan is how far rtspMessageLength got in a message whose header
// block has not all arrived: it resumes at the last whole line instead of
// rescanning the message at every read.
type messageScan struct {
	pos     int // after the last whole line scanned; 0: none yet
	count   int // header lines
	lengths int // Content-Length headers
	body    int // the last Content-Length; -1 unparsable
}

// rtspMessageLength returns the length of the RTSP response (or request)
// at the start of b, header block and body, as gortsplib's base.Response
// (base.Request) Unmarshal reads it. It returns 0, true when b ends before
// the header block does (st then holds the progress for the next call
// with more of the same message), and false when gortsplib would fail on
// it.
func rtspMessageLength(b []byte, response bool, st *messageScan) (int, bool) {
	pos := st.pos
	var ok, more bool
	field := func(delim byte, limit int) bool {
		pos, ok, more = scanField(b, pos, delim, limit)
		return ok && !more
	}
	if pos == 0 {
		if response {
			if !field(' ', rtspMaxResponseProto) || !field(' ', rtspMaxResponseCode) || !field('\r', rtspMaxResponseMessage) {
				return 0, ok
			}
		} else if !field(' ', rtspMaxRequestMethod) || !field(' ', rtspMaxRequestURL) || !field('\r', rtspMaxRequestProto) {
			return 0, ok
		}
		if pos >= len(b) {
			return 0, true
		}
		if b[pos] != '\n' {
			return 0, false
		}
		pos++
		st.pos = pos
	}
	for {
		if pos >= len(b) {
			return 0, true
		}
		if b[pos] == '\r' {
			if pos+1 >= len(b) {
				return 0, true
			}
			if b[pos+1] != '\n' {
				return 0, false
			}
			pos += 2
			break
		}
		if st.count >= rtspMaxHeaderCount {
			return 0, false
		}
		keyStart := pos
		pos++ // the key's first byte, read before the search for ':'
		if !field(':', rtspMaxHeaderKey) {
			return 0, ok
		}
		key := b[keyStart : pos-1]
		for pos < len(b) && b[pos] == ' ' {
			pos++
		}
		valStart := pos
		if !field('\r', rtspMaxHeaderValue) {
			return 0, ok
		}
		val := b[valStart : pos-1]
		if pos >= len(b) {
			return 0, true
		}
		if b[pos] != '\n' {
			return 0, false
		}
		pos++
		st.count++
		if isContentLength(key) {
			st.lengths++
			if n, valid := parseContentLength(val); valid && st.body >= 0 {
				st.body = n
			} else {
				st.body = -1
			}
		}
		st.pos = pos
	}
	if st.lengths != 1 {
		return pos, true
	}
	if st.body < 0 || st.body > rtspMaxContentLength {
		return 0, false
	}
	return pos + st.body, true
}

// scanField finds delim at most limit bytes (delimiter included) from pos,
// as gortsplib's readBytesLimited: it returns the position after it; more
// when b ends first, !ok when the limit is passed.
func scanField(b []byte, pos int, delim byte, limit int) (next int, ok, more bool) {
	for i := 0; i < limit; i++ {
		if pos+i >= len(b) {
			return 0, true, true
		}
		if b[pos+i] == delim {
			return pos + i + 1, true, false
		}
	}
	return 0, false, false
}

// isContentLength reports whether a header key is Content-Length after
// gortsplib's normalization (http.CanonicalHeaderKey: ASCII letters and
// '-' are token characters, so case alone differs).
func isContentLength(key []byte) bool {
	const want = "content-length"
	if len(key) != len(want) {
		return false
	}
	for i := range key {
		k := key[i]
		if 'A' <= k && k <= 'Z' {
			k += 'a' - 'A'
		}
		if k != want[i] {
			return false
		}
	}
	return true
}

// parseContentLength parses a Content-Length value as strconv.ParseUint
// with base 10 does (decimal digits only), capped far above the largest
// body gortsplib accepts.
func parseContentLength(v []byte) (int, bool) {
	if len(v) == 0 {
		return 0, false
	}
	n := 0
	for _, d := range v {
		if d < '0' || d > '9' {
			return 0, false
		}
		if n <= rtspMaxContentLength {
			n = n*10 + int(d-'0')
		}
	}
	return n, true
}
