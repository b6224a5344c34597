package recorder

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nvrfw/nvr/ringstore"
)

// pipeline is the per-connection state that turns units into store frames.
// It is owned by the session goroutine.
type pipeline struct {
	tracks   []trackInfo
	store    []ringstore.Track
	clocks   []*trackClock
	video    []*videoTrack // nil entries for audio tracks
	primary  int           // the first video track, else 0
	hasVideo bool

	tracksSet bool // SetTracks called on this connection
	started   bool // a keyframe was appended on this connection
	waitKey   bool // drop until the next keyframe (after a gap)

	// frameBuf holds the AVCC bytes of the video frame being appended,
	// reused frame after frame (FrameWriter.Append copies them).
	frameBuf []byte
}

// maxFrameBuf is the largest frame buffer a pipeline keeps between frames.
const maxFrameBuf = 1 << 20

func (s *Session) newPipeline(tracks []trackInfo) *pipeline {
	cfg := clockConfig{jump: s.opts.JumpThreshold, slew: s.opts.ClockSlew, maxSkew: s.opts.MaxCameraClockSkew}
	p := &pipeline{tracks: tracks, primary: -1}
	for i, t := range tracks {
		st := ringstore.Track{ID: uint8(i), Codec: t.codec, ClockRate: uint32(t.clockRate), Channels: uint8(t.channels)}
		var v *videoTrack
		if t.codec.IsVideo() {
			v = newVideoTrack(t.codec, t.params)
			if p.primary < 0 {
				p.primary = i
			}
			p.hasVideo = true
		} else if len(t.config) > 0 {
			st.Config = [][]byte{clone(t.config)}
		}
		p.store = append(p.store, st)
		p.video = append(p.video, v)
		clk := newTrackClock(t.clockRate, cfg)
		clk.setFloor(s.lastTime) // frames never go back across reconnects
		p.clocks = append(p.clocks, clk)
	}
	if p.primary < 0 {
		p.primary = 0
	}
	s.update(func(st *Status) { st.Tracks = p.status() })
	return p
}

func (p *pipeline) status() []TrackStatus {
	out := make([]TrackStatus, len(p.tracks))
	for i, t := range p.tracks {
		out[i] = TrackStatus{ID: uint8(i), Codec: t.codec, ClockRate: t.clockRate, Channels: t.channels}
		if v := p.video[i]; v != nil {
			out[i].Width, out[i].Height, out[i].FPS = v.format.width, v.format.height, v.format.fps
		}
	}
	return out
}

func (p *pipeline) describe() string {
	var b strings.Builder
	for i, t := range p.status() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.Codec.String())
		if t.Width > 0 {
			fmt.Fprintf(&b, " %dx%d", t.Width, t.Height)
		}
		if t.FPS > 0 {
			fmt.Fprintf(&b, " %.3gfps", t.FPS)
		}
		if t.Channels > 0 {
			fmt.Fprintf(&b, " %dHz/%dch", t.ClockRate, t.Channels)
		}
	}
	return b.String()
}

// handle turns one unit into a frame and appends it. It reports whether a
// frame was appended; a non-nil error ends the session (ErrStore).
func (s *Session) handle(p *pipeline, u unit) (bool, error) {
	if u.track < 0 || u.track >= len(p.tracks) {
		return false, nil
	}
	clk := p.clocks[u.track]
	ptsExt := clk.unwrap(u.ts)
	ref := reference(u.ntp, u.recv, s.opts.MaxCameraClockSkew)
	f := ringstore.Frame{Track: uint8(u.track)}
	var config [][]byte
	var v *videoTrack
	if v = p.video[u.track]; v != nil {
		au, ok, err := v.prepare(u.nalus)
		if err != nil {
			s.decodeError(err)
			return false, nil
		}
		if !ok {
			return false, nil
		}
		if au.key && v.format.width > 0 {
			s.update(func(st *Status) { st.Tracks = p.status() })
		}
		pl := clk.place(ptsExt, v.dts(au, ptsExt), ref)
		s.jumped(p, pl.jumped)
		f.Time, f.DTSOffset, f.Key = pl.pts, pl.dtsOffset, au.key
		config = au.config
		if p.waitKey || !p.started || !p.tracksSet || config != nil {
			if !au.key {
				s.dropped(p)
				return false, nil
			}
		}
		f.Data = appendAVCC(p.frameBuf[:0], au.nalus)
		if cap(f.Data) <= maxFrameBuf {
			p.frameBuf = f.Data
		}
	} else {
		if len(u.data) == 0 {
			s.decodeError(fmt.Errorf("%w: empty audio frame", errMalformedAU))
			return false, nil
		}
		pl := clk.place(ptsExt, ptsExt, ref)
		s.jumped(p, pl.jumped)
		f.Time, f.Key, f.Data = pl.pts, true, u.data
		if p.hasVideo && (p.waitKey || !p.started) {
			s.dropped(p)
			return false, nil
		}
	}
	if !p.tracksSet || config != nil {
		if config != nil {
			p.store[u.track].Config = config
		}
		if err := s.w.SetTracks(append([]ringstore.Track(nil), p.store...)); err != nil {
			return false, fmt.Errorf("%w: set tracks: %w", ErrStore, err)
		}
		p.tracksSet = true
		if v != nil {
			v.commit()
		}
	}
	return s.appendFrame(p, f, v != nil)
}

// jumped records a timestamp jump: the span ends, recording resumes at the
// next keyframe.
func (s *Session) jumped(p *pipeline, jumped bool) {
	if !jumped || !p.started {
		return
	}
	s.log.Warn("camera timestamps jumped; re-anchored to the wall clock")
	s.endSpan(ringstore.GapTimestampJump)
	p.waitKey = true
}

func (s *Session) dropped(p *pipeline) {
	if p.started {
		s.update(func(st *Status) { st.FramesDropped++ })
	}
}

func (s *Session) appendFrame(p *pipeline, f ringstore.Frame, video bool) (bool, error) {
	_, err := s.w.Append(f)
	switch {
	case err == nil:
	case errors.Is(err, ringstore.ErrClosed):
		return false, fmt.Errorf("%w: append: %w", ErrStore, err)
	case errors.Is(err, ringstore.ErrNonMonotonic):
		// Only a single frame is out of order (the clock keeps decoding
		// time monotonic; presentation time goes back with B-frames).
		s.dropped(p)
		s.decodeError(fmt.Errorf("store rejected frame of track %d: %w", f.Track, err))
		return false, nil
	default:
		// Backpressure (the store is behind), or a frame the store cannot
		// take (too large): drop whole GOPs until the next keyframe.
		s.dropped(p)
		if !p.waitKey {
			if errors.Is(err, ringstore.ErrBackpressure) {
				s.log.Warn("store backlog full, dropping frames until the next keyframe")
			} else {
				s.log.Warn("store refused a frame, dropping frames until the next keyframe", "err", err)
				s.update(func(st *Status) { st.LastError = err.Error() })
			}
			s.endSpan(ringstore.GapDropped)
			p.waitKey = true
		}
		return false, nil
	}
	if f.Key && (video || !p.hasVideo) {
		p.waitKey = false
		p.started = true
	}
	s.sinceGap = true
	if f.Time.After(s.lastTime) {
		s.lastTime = f.Time
	}
	now := s.opts.Now()
	bitrate, fps, ok := s.window.add(now, len(f.Data), video)
	s.update(func(st *Status) {
		st.FramesRecorded++
		st.LastFrame = f.Time
		if ok {
			st.Bitrate, st.FPS = bitrate, fps
		}
	})
	return true, nil
}
