package camsim

import (
	"fmt"
	"time"
)

// FaultKind names a fault switch.
type FaultKind string

// Fault switches. Each applies to one path.
const (
	// FaultDrop closes every connection and session reading the path now
	// (and connections held by FaultNeverAnswer).
	FaultDrop FaultKind = "drop"
	// FaultStall sends nothing (no RTP, no RTCP) for Duration (0: until
	// FaultClear) while keeping connections open and answering keepalives.
	// The timeline runs on: frames due meanwhile are skipped, so the RTP
	// timestamps after the stall are ahead by its length.
	FaultStall FaultKind = "stall"
	// FaultJump adds Offset (may be negative) to the RTP timestamps of every
	// track from the next packet on. Sender reports keep mapping RTP time to
	// the true wall clock, so the jump shows between RTP and wall time.
	// Jumps add up.
	FaultJump FaultKind = "jump"
	// FaultJumpNTP adds Offset to the wall clock in sender reports (the
	// camera's clock was reset); RTP timestamps stay continuous.
	FaultJumpNTP FaultKind = "jump-ntp"
	// FaultParams switches to the other-resolution clip (and back on the
	// next call) at the next frame: a keyframe carrying the new parameter
	// sets in-band. The SDP keeps the original parameter sets.
	FaultParams FaultKind = "params"
	// FaultMalformed sends Count (default 10) malformed video packets, a
	// few before each frame: garbage payloads, truncated fragmentation
	// units, NAL unit types RTP must not carry. Real frames keep flowing.
	FaultMalformed FaultKind = "malformed"
	// FaultRefuseAuth answers the next DESCRIBE carrying credentials (any
	// DESCRIBE on a path without credentials) with 401 and closes the
	// connection.
	FaultRefuseAuth FaultKind = "refuse-auth"
	// FaultNeverAnswer accepts new connections to the path but never
	// answers their requests, for Duration (0: until FaultClear). Requests
	// held when it ends are answered; FaultDrop closes them instead.
	FaultNeverAnswer FaultKind = "never-answer"
	// FaultRestart reboots the camera: every connection drops, new
	// connections are closed at once for Duration (0: none), then the path
	// serves a new stream: new SSRCs, new random RTP timestamp and sequence
	// bases, the main clip from its first frame (a keyframe), faults off.
	FaultRestart FaultKind = "restart"
	// FaultClear ends stall and never-answer and cancels pending malformed
	// packets and refuse-auth. Jumps and the clip switch stay.
	FaultClear FaultKind = "clear"
)

// FaultKinds lists every fault kind, for help texts.
var FaultKinds = []FaultKind{FaultDrop, FaultStall, FaultJump, FaultJumpNTP, FaultParams,
	FaultMalformed, FaultRefuseAuth, FaultNeverAnswer, FaultRestart, FaultClear}

// Fault is one fault switch and its argument.
type Fault struct {
	Kind FaultKind
	// Duration of FaultStall and FaultNeverAnswer; 0 means until FaultClear.
	Duration time.Duration
	// Offset of FaultJump and FaultJumpNTP; must not be 0.
	Offset time.Duration
	// Count of FaultMalformed packets, at most 100000. Default 10.
	Count int
}

const (
	defaultMalformedCount = 10
	maxMalformedCount     = 100000
)

// Fault applies a fault switch to a path.
func (s *Simulator) Fault(name string, f Fault) error {
	p := s.lookup(name)
	if p == nil {
		return fmt.Errorf("%w: %s", ErrNoPath, name)
	}
	if f.Duration < 0 || f.Count < 0 || f.Count > maxMalformedCount {
		return fmt.Errorf("%w: fault argument out of range (duration >= 0, 0 <= count <= %d)", ErrBadConfig, maxMalformedCount)
	}
	if f.Kind == FaultRestart {
		s.log.Info("camsim fault", "path", name, "kind", f.Kind, "duration", f.Duration)
		return s.restartPath(p, f.Duration)
	}
	now := time.Now()
	p.mu.Lock()
	switch f.Kind {
	case FaultDrop:
		p.releaseHeldLocked(true)
	case FaultStall:
		p.stallOn = f.Duration == 0
		p.stallUntil = time.Time{}
		if f.Duration > 0 {
			p.stallUntil = now.Add(f.Duration)
		}
	case FaultJump, FaultJumpNTP:
		if f.Offset == 0 {
			p.mu.Unlock()
			return fmt.Errorf("%w: %s needs a non-zero offset", ErrBadConfig, f.Kind)
		}
		if f.Kind == FaultJump {
			p.jumpRTP += f.Offset
		} else {
			p.jumpNTP += f.Offset
		}
	case FaultParams:
		p.switchClip = !p.switchClip
	case FaultMalformed:
		if f.Count == 0 {
			f.Count = defaultMalformedCount
		}
		p.malformed += f.Count
	case FaultRefuseAuth:
		p.refuseAuth = true
	case FaultNeverAnswer:
		if p.holdRelease == nil {
			p.holdRelease = make(chan struct{})
		}
		p.holdUntil = time.Time{}
		if f.Duration > 0 {
			p.holdUntil = now.Add(f.Duration)
		}
	case FaultClear:
		p.stallOn, p.stallUntil = false, time.Time{}
		p.malformed = 0
		p.refuseAuth = false
		p.releaseHeldLocked(false)
	default:
		p.mu.Unlock()
		return fmt.Errorf("%w: fault kind %q", ErrBadConfig, f.Kind)
	}
	p.mu.Unlock()
	if f.Kind == FaultDrop {
		s.mu.Lock()
		r := s.rtsp
		s.mu.Unlock()
		if r != nil {
			n := r.dropPath(p)
			p.stats.dropped.Add(uint64(n))
		}
	}
	s.log.Info("camsim fault", "path", name, "kind", f.Kind, "duration", f.Duration, "offset", f.Offset, "count", f.Count)
	return nil
}

// PathStats are a path's counters at one instant. Frames, bytes and packets
// count what was sent once to the path's readers (not once per reader), only
// while at least one reader was playing; the timeline runs on without
// readers but sends nothing.
type PathStats struct {
	Path string    `json:"path"`
	At   time.Time `json:"at"`
	// Frames and Keyframes count video access units sent.
	Frames    uint64 `json:"frames"`
	Keyframes uint64 `json:"keyframes"`
	// AudioFrames counts audio packets sent (one AAC access unit, or 20 ms of G.711).
	AudioFrames uint64 `json:"audio_frames"`
	// Packets and Bytes count RTP packets and their bytes (12-byte header
	// plus payload), malformed ones included.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// VideoBytes sums the sizes of the video frames sent, counted as the
	// store keeps them (NAL units plus a 4-byte length each, filler included).
	VideoBytes uint64 `json:"video_bytes"`
	// Malformed counts malformed RTP packets sent.
	Malformed uint64 `json:"malformed"`
	// SenderReports counts RTCP sender reports sent.
	SenderReports uint64 `json:"sender_reports"`
	// Sessions counts sessions that started playing; Playing is how many
	// play now.
	Sessions uint64 `json:"sessions"`
	Playing  int    `json:"playing"`
	// AuthRefused counts DESCRIBEs refused by FaultRefuseAuth; Held counts
	// requests held by FaultNeverAnswer; Dropped counts sessions and
	// connections closed by FaultDrop.
	AuthRefused uint64 `json:"auth_refused"`
	Held        uint64 `json:"held"`
	Dropped     uint64 `json:"dropped"`
	// ParamChanges counts clip switches; Loops counts completed passes over
	// the current clip.
	ParamChanges uint64 `json:"param_changes"`
	Loops        uint64 `json:"loops"`
	// Restarts counts FaultRestart.
	Restarts uint64 `json:"restarts"`
	// Clip is the video clip served now; Bitrate its mean video bitrate in
	// bit/s (as VideoBytes counts).
	Clip    string `json:"clip"`
	Bitrate int64  `json:"bitrate"`
}

// Stats returns a path's counters now.
func (s *Simulator) Stats(name string) (PathStats, error) {
	p := s.lookup(name)
	if p == nil {
		return PathStats{}, fmt.Errorf("%w: %s", ErrNoPath, name)
	}
	return p.snapshot(), nil
}

func (p *path) snapshot() PathStats {
	p.mu.Lock()
	clip := p.loops[p.clipIdx]
	p.mu.Unlock()
	c := &p.stats
	return PathStats{
		Path: p.name, At: time.Now(),
		Frames: c.frames.Load(), Keyframes: c.keyframes.Load(), AudioFrames: c.audioFrames.Load(),
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), VideoBytes: c.videoBytes.Load(),
		Malformed: c.malformed.Load(), SenderReports: c.senderReports.Load(),
		Sessions: c.sessions.Load(), Playing: int(p.playing.Load()),
		AuthRefused: c.authRefused.Load(), Held: c.held.Load(), Dropped: c.dropped.Load(),
		ParamChanges: c.paramChanges.Load(), Loops: c.loops.Load(), Restarts: c.restarts.Load(),
		Clip: clip.clip.name, Bitrate: clip.bitrate,
	}
}

// SentFrame is one video frame a path sent.
type SentFrame struct {
	// Time is the frame's capture time on the wall clock: the path's start
	// plus its frame number times 40 ms. Sender reports map RTP time to it
	// (before any jump-ntp fault).
	Time time.Time `json:"time"`
	// RTPTime is the frame's RTP timestamp (after any jump fault).
	RTPTime uint32 `json:"rtp_time"`
	Key     bool   `json:"key"`
	// Size is the frame's bytes counted as PathStats.VideoBytes does.
	Size int `json:"size"`
	// Clip names the clip the frame came from.
	Clip string `json:"clip"`
}

// SentFrames returns the remembered frames (Options.FrameHistory) the path
// sent with from <= Time < to, oldest first.
func (s *Simulator) SentFrames(name string, from, to time.Time) ([]SentFrame, error) {
	p := s.lookup(name)
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoPath, name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.history.between(from, to), nil
}
