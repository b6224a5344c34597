package recorder

import (
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// State is where a camera session is in its life.
type State uint8

// Session states.
const (
	// StateIdle: the session has not started yet.
	StateIdle State = iota
	// StateConnecting: opening the RTSP session, or connected and waiting
	// for the first keyframe.
	StateConnecting
	// StateRecording: frames are going into the store.
	StateRecording
	// StateBackoff: the last attempt failed or the camera went away; the
	// session waits before reconnecting (Status.LastError says why).
	StateBackoff
	// StateError: the session stopped for a reason reconnecting cannot fix
	// (the store is closed or refused the stream); Status.LastError says why.
	StateError
	// StateStopped: the session was stopped (removed, or the recorder closed).
	StateStopped
)

// String returns the state in words, as shown to operators.
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnecting:
		return "connecting"
	case StateRecording:
		return "recording"
	case StateBackoff:
		return "backoff"
	case StateError:
		return "error"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// TrackStatus describes one recorded track of a camera.
type TrackStatus struct {
	// ID is the store's Track.ID.
	ID uint8
	// Codec is the track's encoding.
	Codec ringstore.Codec
	// Width and Height are the picture size from the SPS (video; 0 when unknown).
	Width, Height int
	// FPS is the frame rate the SPS declares (video; 0 when it declares none).
	FPS float64
	// ClockRate is the RTP clock (90000 for video, the sample rate for audio).
	ClockRate int
	// Channels is the number of audio channels (0 for video).
	Channels int
}

// Status is a snapshot of one camera session.
type Status struct {
	// Name is the camera's stream name.
	Name string
	// URL is the camera URL with its password redacted.
	URL string
	// Transport is the RTP transport asked for.
	Transport Transport
	// State is where the session is; Since is when it entered it.
	State State
	Since time.Time
	// LastError is the last failure in words ("" when none since the last
	// time recording started).
	LastError string
	// Tracks are the recorded tracks of the current (or last) connection.
	Tracks []TrackStatus
	// Bitrate is the recorded bits per second (all tracks, frame data as
	// stored) and FPS the recorded video frames per second, measured over
	// windows of at least two seconds.
	Bitrate float64
	FPS     float64
	// LastFrame is the wall time of the last frame appended to the store.
	LastFrame time.Time
	// Connects counts successful RTSP session starts; Reconnects is the
	// number of connection attempts after the first.
	Connects, Reconnects uint64
	// FramesRecorded counts frames the store took; FramesDropped frames not
	// recorded after recording started (store backpressure, waiting for a
	// keyframe after a gap, timestamp trouble).
	FramesRecorded, FramesDropped uint64
	// Gaps counts the gaps the session marked in the store, by cause.
	Gaps map[ringstore.GapCause]uint64
	// DecodeErrors counts RTP packets or access units that could not be
	// decoded (malformed, lost packets).
	DecodeErrors uint64
	// Panics counts recovered panics of the session.
	Panics uint64
}

// GapCount returns the total number of gaps marked.
func (s Status) GapCount() uint64 {
	var n uint64
	for _, v := range s.Gaps {
		n += v
	}
	return n
}
