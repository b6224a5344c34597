package camsim

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Timing of the video track: every clip is 25 fps.
const (
	videoClock       = 90000
	frameTicks       = videoClock / clipFrameRate
	framePeriod      = time.Second / clipFrameRate
	maxLateness      = time.Second // behind by more than this, the pump skips ahead instead of bursting
	malformedPerTick = 8           // malformed packets sent before each frame while some are due
)

// path is one served camera stream: its configuration, its pump goroutine
// (which owns the timeline and the RTP state), its faults and counters.
type path struct {
	name    string
	cfg     PathConfig
	loops   [2]*videoLoop // the clip, and the other-resolution clip (parameter-set change)
	audio   *audioLoop    // nil without audio
	srEvery time.Duration

	mu sync.Mutex
	// stream is set while the simulator runs (nil before Start and after
	// RemovePath).
	stream *rtspStream
	// faults
	stallUntil  time.Time // zero: not stalled
	stallOn     bool      // stalled until cleared (stallUntil zero)
	jumpRTP     time.Duration
	jumpNTP     time.Duration
	switchClip  bool
	malformed   int
	holdUntil   time.Time     // zero with holdRelease set: until cleared
	holdRelease chan struct{} // non-nil while never-answer is on; closed to release
	holdDrop    bool          // released requests close their connection
	refuseAuth  bool
	downUntil   time.Time // restarting: new connections are closed until then
	history     frameRing
	clipIdx     int // loop served now (read for stats)

	playing atomic.Int32
	wake    chan struct{} // cap 1: a reader started (send a sender report now)
	cancel  context.CancelFunc
	done    chan struct{}

	stats pathCounters
}

// pathCounters are a path's cumulative counters.
type pathCounters struct {
	frames, keyframes, audioFrames       atomic.Uint64
	packets, bytes, videoBytes           atomic.Uint64
	malformed, senderReports             atomic.Uint64
	sessions, authRefused, held, dropped atomic.Uint64
	paramChanges, loops, restarts        atomic.Uint64
}

func newPath(name string, cfg PathConfig, loops [2]*videoLoop, audio *audioLoop, history int, srEvery time.Duration) *path {
	return &path{
		name: name, cfg: cfg, loops: loops, audio: audio, srEvery: srEvery,
		history: frameRing{limit: history},
		wake:    make(chan struct{}, 1),
	}
}

// currentStream returns the stream readers attach to, nil if p is nil or
// not serving.
func (p *path) currentStream() *rtspStream {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stream
}

func (p *path) readerStarted() {
	p.playing.Add(1)
	p.stats.sessions.Add(1)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *path) readerStopped() { p.playing.Add(-1) }

// refuseAuthNow reports whether this DESCRIBE must be refused by the
// refuse-auth fault (consuming it). A path with credentials refuses only a
// request that carries some, so the usual first unauthenticated challenge
// does not consume the fault.
func (p *path) refuseAuthNow(hasCredentials bool) bool {
	if p.cfg.User != "" && !hasCredentials {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refuseAuth {
		return false
	}
	p.refuseAuth = false
	p.stats.authRefused.Add(1)
	return true
}

// hold blocks a new connection's request while the never-answer fault is on,
// until the fault ends or is cleared, or closing is closed. It reports whether
// the connection must then be closed instead of answered (dropped, removed,
// shutting down, or restarting).
func (p *path) hold(closing <-chan struct{}) (drop bool) {
	p.mu.Lock()
	rel, until, down := p.holdRelease, p.holdUntil, p.downUntil
	p.mu.Unlock()
	if time.Now().Before(down) {
		return true // restarting: the camera is not up yet
	}
	if rel == nil {
		return false
	}
	var expire <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return false
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expire = t.C
	}
	p.stats.held.Add(1)
	select {
	case <-rel:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.holdDrop
	case <-expire:
		return false
	case <-closing:
		return true
	}
}

// releaseHeld ends the never-answer fault; held requests are answered, or
// their connections closed when drop is set. Call with p.mu held.
func (p *path) releaseHeldLocked(drop bool) {
	if p.holdRelease != nil {
		p.holdDrop = drop
		close(p.holdRelease)
		p.holdRelease = nil
	}
	p.holdUntil = time.Time{}
}

// trackState is one track's RTP state in the pump.
type trackState struct {
	seq   uint16
	ts0   uint32 // RTP time of the path's start
	clock int
	ssrc  uint32 // learned from the first packet sent (gortsplib picks it)
	sent  bool
	// srPending: a reader started; send a sender report after the next packet.
	srPending bool
	packets   uint32
	octets    uint32
	pkt       rtp.Packet
}

func newTrackState(clock int, pt uint8) trackState {
	return trackState{
		seq: uint16(rand.Uint32()), ts0: rand.Uint32(), clock: clock,
		pkt: rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt}},
	}
}

// ticks converts d to RTP ticks of clock (wrapping, signed). Whole seconds
// and the rest are converted apart: d*clock overflows int64 past 28 hours
// at 90 kHz.
func ticks(d time.Duration, clock int) uint32 {
	sec, rest := int64(d/time.Second), int64(d%time.Second)
	return uint32(sec*int64(clock) + rest*int64(clock)/int64(time.Second))
}

// pump is the state of a path's sending goroutine.
type pump struct {
	p       *path
	st      *rtspStream
	t0      time.Time
	video   trackState
	audio   trackState
	n       int64 // video frames since t0 (sent or not)
	k       int64 // audio access units since t0
	cursor  int   // position in the current video loop
	loop    int   // 0 or 1: the clip served
	nextSR  time.Time
	garbage *rand.Rand
	// now and faults are those of the sendDue call in progress.
	now    time.Time
	faults faultState
}

// run sends the path's stream in real time until ctx is done.
func (p *path) run(ctx context.Context, st *rtspStream, done chan struct{}) {
	defer close(done)
	p.mu.Lock()
	down := p.downUntil
	p.mu.Unlock()
	if wait := time.Until(down); wait > 0 { // restarting: the timeline starts when it is up
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	now := time.Now()
	u := &pump{p: p, st: st, t0: now, nextSR: now.Add(p.srEvery),
		video:   newTrackState(videoClock, videoPayloadType),
		garbage: rand.New(rand.NewPCG(rand.Uint64(), 0))}
	if p.audio != nil {
		pt := uint8(aacPayloadType)
		if p.audio.clip.codec == PCMU {
			pt = pcmuPayloadType
		}
		u.audio = newTrackState(p.audio.clip.sampleRate, pt)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.wake:
			u.video.srPending, u.audio.srPending = true, true
		}
		now := time.Now()
		u.sendDue(now)
		timer.Reset(time.Until(u.nextDue()))
	}
}

func (u *pump) videoTime(n int64) time.Time { return u.t0.Add(time.Duration(n) * framePeriod) }

func (u *pump) audioTime(k int64) time.Time {
	c := u.p.audio.clip
	return u.t0.Add(time.Duration(k * int64(c.samples) * int64(time.Second) / int64(c.sampleRate)))
}

func (u *pump) nextDue() time.Time {
	next := u.videoTime(u.n)
	if u.p.audio != nil {
		if a := u.audioTime(u.k); a.Before(next) {
			next = a
		}
	}
	if u.nextSR.Before(next) {
		next = u.nextSR
	}
	return next
}

// faultState is the fault switches as the pump sees them at one instant.
type faultState struct {
	stalled          bool
	jumpRTP, jumpNTP time.Duration
	switchClip       bool
	malformed        int
}

func (p *path) takeFaults(now time.Time) faultState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stallUntil.IsZero() && !now.Before(p.stallUntil) {
		p.stallUntil = time.Time{}
	}
	f := faultState{
		stalled: p.stallOn || !p.stallUntil.IsZero(),
		jumpRTP: p.jumpRTP, jumpNTP: p.jumpNTP,
		switchClip: p.switchClip,
	}
	p.switchClip = false
	if !f.stalled && p.malformed > 0 {
		f.malformed = min(p.malformed, malformedPerTick)
		p.malformed -= f.malformed
	}
	return f
}

// sendDue sends every frame, audio unit and sender report due at now.
func (u *pump) sendDue(now time.Time) {
	p := u.p
	if late := now.Sub(u.videoTime(u.n)); late > maxLateness {
		skip := int64(late / framePeriod)
		u.n += skip
		u.cursor = (u.cursor + int(skip%int64(len(p.loops[u.loop].frames)))) % len(p.loops[u.loop].frames)
	}
	if p.audio != nil {
		if late := now.Sub(u.audioTime(u.k)); late > maxLateness {
			c := p.audio.clip
			u.k += int64(late) * int64(c.sampleRate) / int64(c.samples) / int64(time.Second)
		}
	}
	f := p.takeFaults(now)
	u.now, u.faults = now, f
	if f.switchClip {
		u.loop ^= 1
		u.cursor = 0
		p.stats.paramChanges.Add(1)
		p.mu.Lock()
		p.clipIdx = u.loop
		p.mu.Unlock()
	}
	active := p.playing.Load() > 0 && !f.stalled
	for !u.videoTime(u.n).After(now) {
		if active {
			u.sendMalformed(f.jumpRTP, f.malformed)
			f.malformed = 0
			u.sendFrame(f.jumpRTP)
		}
		u.n++
		u.cursor++
		if u.cursor == len(p.loops[u.loop].frames) {
			u.cursor = 0
			p.stats.loops.Add(1)
		}
	}
	for p.audio != nil && !u.audioTime(u.k).After(now) {
		if active {
			u.sendAudio(f.jumpRTP)
		}
		u.k++
	}
	if !u.nextSR.After(now) {
		if active {
			u.sendReports(now, f, false)
		}
		u.nextSR = now.Add(p.srEvery)
	} else if active && (u.video.srPending || u.audio.srPending) {
		u.sendReports(now, f, true)
	}
	if f.malformed > 0 { // not sent: give them back
		p.mu.Lock()
		p.malformed += f.malformed
		p.mu.Unlock()
	}
}

func (u *pump) write(track int, ts *trackState, payload []byte, marker bool, rtpTime uint32, capture time.Time) {
	ts.pkt.SequenceNumber = ts.seq
	ts.pkt.Timestamp = rtpTime
	ts.pkt.Marker = marker
	ts.pkt.Payload = payload
	ts.seq++
	if err := u.st.writeRTP(track, &ts.pkt, capture); err != nil {
		return // the stream is closing
	}
	ts.ssrc, ts.sent = ts.pkt.SSRC, true
	ts.packets++
	ts.octets += uint32(len(payload))
	u.p.stats.packets.Add(1)
	u.p.stats.bytes.Add(uint64(rtpHeaderSize + len(payload)))
	if ts.srPending {
		// A reader started: the report goes right after the first packet
		// (the SSRC is known from then on), so the reader can time the
		// very first access unit with it, as it ends after this packet.
		ts.srPending = false
		u.sendReport(track, ts, u.now, u.faults)
	}
}

const rtpHeaderSize = 12

func (u *pump) sendFrame(jump time.Duration) {
	p := u.p
	fr := &p.loops[u.loop].frames[u.cursor]
	capture := u.videoTime(u.n)
	rtpTime := u.video.ts0 + uint32(u.n*frameTicks) + ticks(jump, videoClock)
	for _, t := range fr.pkts {
		u.write(0, &u.video, t.payload, t.marker, rtpTime, capture)
	}
	p.stats.frames.Add(1)
	if fr.key {
		p.stats.keyframes.Add(1)
	}
	p.stats.videoBytes.Add(uint64(fr.size))
	p.mu.Lock()
	p.history.add(SentFrame{Time: capture, RTPTime: rtpTime, Key: fr.key, Size: fr.size, Clip: p.loops[u.loop].clip.name})
	p.mu.Unlock()
}

func (u *pump) sendAudio(jump time.Duration) {
	a := u.p.audio
	t := a.pkts[u.k%int64(len(a.pkts))]
	rtpTime := u.audio.ts0 + uint32(u.k*int64(a.clip.samples)) + ticks(jump, a.clip.sampleRate)
	u.write(1, &u.audio, t.payload, t.marker, rtpTime, u.audioTime(u.k))
	u.p.stats.audioFrames.Add(1)
}

// sendReports sends an RTCP sender report on each track that has sent RTP
// (only those with one pending if pendingOnly).
func (u *pump) sendReports(now time.Time, f faultState, pendingOnly bool) {
	for track, ts := range []*trackState{&u.video, &u.audio} {
		if !ts.sent || (pendingOnly && !ts.srPending) {
			continue
		}
		ts.srPending = false
		u.sendReport(track, ts, now, f)
	}
}

// sendReport sends a sender report on track: the wall clock of now
// (shifted by the jump-ntp fault) and the track's RTP time of now.
func (u *pump) sendReport(track int, ts *trackState, now time.Time, f faultState) {
	since := now.Sub(u.t0)
	sr := &rtcp.SenderReport{
		SSRC:        ts.ssrc,
		NTPTime:     ntpTime(now.Add(f.jumpNTP)),
		RTPTime:     ts.ts0 + ticks(since, ts.clock) + ticks(f.jumpRTP, ts.clock),
		PacketCount: ts.packets,
		OctetCount:  ts.octets,
	}
	if err := u.st.writeRTCP(track, sr); err == nil {
		u.p.stats.senderReports.Add(1)
	}
}

// ntpTime encodes t as a 64-bit NTP timestamp (seconds since 1900, 32.32
// fixed point).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	ns := uint64(t.UnixNano())
	sec := ns/1e9 + ntpEpochOffset
	frac := (ns % 1e9) << 32 / 1e9
	return sec<<32 | frac
}

// frameRing keeps the last limit sent frames; its buffer grows as frames
// are sent, so paths nobody reads cost nothing.
type frameRing struct {
	limit int
	buf   []SentFrame
	next  int
	full  bool
}

func (r *frameRing) add(f SentFrame) {
	if r.limit <= 0 {
		return
	}
	if !r.full && len(r.buf) < r.limit {
		r.buf = append(r.buf, f)
		if len(r.buf) == r.limit {
			r.full = true
		}
		return
	}
	r.buf[r.next] = f
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
	}
}

// between returns the kept frames with from <= Time < to, oldest first.
func (r *frameRing) between(from, to time.Time) []SentFrame {
	var out []SentFrame
	visit := func(fs []SentFrame) {
		for _, f := range fs {
			if !f.Time.Before(from) && f.Time.Before(to) {
				out = append(out, f)
			}
		}
	}
	if r.full {
		visit(r.buf[r.next:])
		visit(r.buf[:r.next])
	} else {
		visit(r.buf)
	}
	return out
}
