package ringstore

import (
	"errors"
	"fmt"
	"time"
)

// Codec identifies how a track's frames are encoded.
type Codec uint8

// Codecs the store records. The numbers are part of the on-disk format.
const (
	CodecUnknown Codec = 0
	CodecH264    Codec = 1 // Data: AVCC access unit (4-byte big-endian length before each NALU)
	CodecH265    Codec = 2 // Data: as H264
	CodecAAC     Codec = 3 // Data: one raw AAC access unit; Config[0]: AudioSpecificConfig
	CodecPCMU    Codec = 4 // Data: G.711 mu-law samples
	CodecPCMA    Codec = 5 // Data: G.711 A-law samples
	CodecOpus    Codec = 6 // Data: one Opus packet
)

// String returns the codec's common name.
func (c Codec) String() string {
	switch c {
	case CodecH264:
		return "H264"
	case CodecH265:
		return "H265"
	case CodecAAC:
		return "AAC"
	case CodecPCMU:
		return "G711U"
	case CodecPCMA:
		return "G711A"
	case CodecOpus:
		return "Opus"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// IsVideo reports whether the codec carries pictures.
func (c Codec) IsVideo() bool { return c == CodecH264 || c == CodecH265 }

// Track describes one elementary stream of a camera stream.
type Track struct {
	// ID is the track's number within its stream, as used in Frame.Track.
	ID uint8
	// Codec is the track's encoding.
	Codec Codec
	// ClockRate is the track's sample rate in Hz (90000 for video; the
	// audio sample rate for audio).
	ClockRate uint32
	// Channels is the number of audio channels; 0 for video.
	Channels uint8
	// Config holds the codec parameter sets: H.264 SPS, PPS; H.265 VPS, SPS,
	// PPS; AAC AudioSpecificConfig. The store writes them into every record
	// that starts with a keyframe and into the first record after they change.
	Config [][]byte
}

// Frame is one access unit of one track.
type Frame struct {
	// Track is the Track.ID the frame belongs to.
	Track uint8
	// Time is the frame's presentation time on the wall clock. Frames are
	// appended in decoding order: with B-frames Time goes back and forth, but
	// decoding time (Time - DTSOffset) never goes back within a track; the
	// store rejects a frame whose decoding time is before the previous one's
	// with ErrNonMonotonic.
	Time time.Time
	// DTSOffset is presentation minus decoding time (>= 0; 0 without B-frames).
	DTSOffset time.Duration
	// Key marks a video keyframe (IDR/IRAP); recording, reads and exports
	// start at keyframes. Audio frames are all keyframes.
	Key bool
	// Data is the encoded access unit, in the layout its Codec documents.
	Data []byte
}

// GapCause says why a stream has no footage for a time range.
type GapCause uint8

// Gap causes. The numbers are part of the on-disk format.
const (
	GapUnknown       GapCause = 0 // nothing recorded, cause unknown
	GapCameraOffline GapCause = 1 // the camera's session was down
	GapStoreRestart  GapCause = 2 // the recorder process or appliance restarted
	GapEvicted       GapCause = 3 // overwritten by the ring or past max age
	GapTimestampJump GapCause = 4 // the camera's clock jumped; footage continues
	GapDropped       GapCause = 5 // the store fell behind and whole GOPs were dropped
	GapCorrupt       GapCause = 6 // a record failed its checksum (bit rot)
	GapStall         GapCause = 7 // the camera's session was open but sent nothing
)

// String returns the cause in words, as shown to operators.
func (c GapCause) String() string {
	switch c {
	case GapCameraOffline:
		return "camera offline"
	case GapStoreRestart:
		return "store restart"
	case GapEvicted:
		return "evicted"
	case GapTimestampJump:
		return "timestamp jump"
	case GapDropped:
		return "frames dropped"
	case GapCorrupt:
		return "corrupt record"
	case GapStall:
		return "camera stalled"
	}
	return "unknown"
}

// Span is a time range of continuous footage of one stream.
type Span struct {
	Start, End time.Time
}

// Gap is a time range without footage, with its cause when known.
type Gap struct {
	Start, End time.Time
	Cause      GapCause
}

// Position is a place in a volume's append log: records are totally ordered
// by (Gen, Offset). The zero Position is before every record. Cursors (the
// mirror, the API) resume "after Position P".
type Position struct {
	Gen    uint64 // slot generation the record was written under
	Offset int64  // byte offset of the record in its slot file
}

// Less reports whether p is before q in the log.
func (p Position) Less(q Position) bool {
	if p.Gen != q.Gen {
		return p.Gen < q.Gen
	}
	return p.Offset < q.Offset
}

// Errors callers act on.
var (
	// ErrBackpressure: the stream's pending (not yet committed) bytes exceed
	// its bound; the frame was not taken. The recorder drops up to the next
	// keyframe and counts it.
	ErrBackpressure = errors.New("ringstore: stream backlog full, frame not taken")
	// ErrNonMonotonic: a frame's time is before its track's previous frame.
	ErrNonMonotonic = errors.New("ringstore: frame time goes backwards")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("ringstore: store closed")
	// ErrIdentityMismatch: the index and the data volume were not formatted
	// together (wrong disk, restored index, swapped volume).
	ErrIdentityMismatch = errors.New("ringstore: index does not belong to this volume")
	// ErrNotFormatted: the directory holds no formatted volume.
	ErrNotFormatted = errors.New("ringstore: no formatted volume here")
	// ErrEvicted: the requested position or range has been overwritten.
	ErrEvicted = errors.New("ringstore: footage evicted")
)
