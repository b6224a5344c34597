package recorder

import (
	"time"
)

// clockConfig tunes how RTP timestamps are mapped to wall time.
type clockConfig struct {
	// jump is the largest disagreement between a track's RTP clock and the
	// reference clock that is slewed away; beyond it the track re-anchors.
	jump time.Duration
	// slew is the largest correction applied per unit of media time
	// (0.01: 10 ms per second of media).
	slew float64
	// maxSkew is how far a sender report's NTP time may be from the local
	// clock and still be trusted as the reference.
	maxSkew time.Duration
}

// reference returns the wall time a sample should have: the camera's NTP
// time from RTCP sender reports when known and within maxSkew of the local
// clock (a camera without a synchronised clock is not trusted), else the
// local arrival time.
func reference(ntp time.Time, recv time.Time, maxSkew time.Duration) time.Time {
	if ntp.IsZero() {
		return recv
	}
	d := ntp.Sub(recv)
	if d < 0 {
		d = -d
	}
	if d > maxSkew {
		return recv
	}
	return ntp
}

// smallBackStep is how far decoding time may step back without counting as
// a timestamp jump (the track still re-anchors).
const smallBackStep = time.Second

// trackClock maps one track's 32-bit RTP timestamps to wall-clock time. It is
// a pure state machine: time arrives as arguments, it reads no clock.
//
// Samples are first unwrapped (unwrap) into a 64-bit tick count that survives
// the 32-bit wraparound, then placed (place) on the wall clock: the first
// sample is anchored at its reference time; later samples follow the RTP
// clock, slowly slewed toward the reference (at most cfg.slew of the media
// time elapsed) so that drift between the camera's clock and ours never
// accumulates. A disagreement beyond cfg.jump, or decoding time going
// backwards by more than smallBackStep, re-anchors the track at the
// reference and reports a jump; a smaller step back re-anchors silently.
// Decoding times returned are never before the previous one.
type trackClock struct {
	rate int64 // ticks per second
	cfg  clockConfig

	unwrapped bool
	lastTS    uint32
	ext       int64

	placed     bool
	anchorWall time.Time
	anchorExt  int64
	offset     time.Duration // accumulated slew correction
	lastDTS    int64         // ext ticks of the previous placed sample's DTS
	lastWall   time.Time     // wall time of the previous placed sample's DTS
}

func newTrackClock(rate int, cfg clockConfig) *trackClock {
	if rate <= 0 {
		rate = 90000
	}
	return &trackClock{rate: int64(rate), cfg: cfg}
}

// unwrap extends a 32-bit RTP timestamp into the track's 64-bit tick count:
// the step from the previous timestamp is taken as a signed 32-bit
// difference, so the wrap from 2^32-1 to 0 is a small step forward.
func (c *trackClock) unwrap(ts uint32) int64 {
	if !c.unwrapped {
		c.unwrapped = true
		c.lastTS = ts
		c.ext = 0
		return 0
	}
	c.ext += int64(int32(ts - c.lastTS))
	c.lastTS = ts
	return c.ext
}

// ticks converts a tick count to a duration without overflow for counts
// below 2^63/1e9 seconds of media.
func (c *trackClock) ticks(n int64) time.Duration {
	sec := n / c.rate
	rem := n % c.rate
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/c.rate)
}

// placement is where a sample lands on the wall clock.
type placement struct {
	pts       time.Time     // presentation time
	dtsOffset time.Duration // presentation minus decoding time, >= 0
	jumped    bool          // the track re-anchored before this sample
}

// place maps a sample with unwrapped presentation and decoding ticks to the
// wall clock, given its reference time (see reference).
func (c *trackClock) place(ptsExt, dtsExt int64, ref time.Time) placement {
	if dtsExt > ptsExt {
		dtsExt = ptsExt
	}
	var p placement
	if !c.placed {
		c.placed = true
		c.anchor(dtsExt, c.notBefore(ref))
		c.lastDTS = dtsExt
		c.lastWall = c.anchorWall
	}
	predicted := c.anchorWall.Add(c.ticks(dtsExt-c.anchorExt) + c.offset)
	diff := ref.Sub(predicted)
	switch {
	case diff > c.cfg.jump || diff < -c.cfg.jump || dtsExt < c.lastDTS-c.rate*int64(smallBackStep/time.Second):
		c.anchor(dtsExt, c.notBefore(ref))
		predicted = c.anchorWall
		p.jumped = true
	case dtsExt < c.lastDTS:
		// A small step back (a glitch, or decoding times estimated badly):
		// continue from the reference without reporting a jump.
		c.anchor(dtsExt, c.notBefore(ref))
		predicted = c.anchorWall
	default:
		limit := time.Duration(float64(c.ticks(dtsExt-c.lastDTS)) * c.cfg.slew)
		step := min(max(diff, -limit), limit)
		c.offset += step
		predicted = predicted.Add(step)
	}
	if predicted.Before(c.lastWall) {
		predicted = c.lastWall
	}
	c.lastDTS = dtsExt
	c.lastWall = predicted
	p.dtsOffset = c.ticks(ptsExt - dtsExt)
	p.pts = predicted.Add(p.dtsOffset)
	return p
}

// notBefore returns t, or just after the last placed time when t is not
// after it: anchors never go back, so the samples after them progress
// normally.
func (c *trackClock) notBefore(t time.Time) time.Time {
	if !c.lastWall.IsZero() && !t.After(c.lastWall) {
		return c.lastWall.Add(time.Millisecond)
	}
	return t
}

// setFloor makes the first sample placed no earlier than t (the last frame
// of a previous connection of the same stream).
func (c *trackClock) setFloor(t time.Time) {
	if !c.placed {
		c.lastWall = t
	}
}

func (c *trackClock) anchor(ext int64, wall time.Time) {
	c.anchorExt = ext
	c.anchorWall = wall
	c.offset = 0
}
