package clip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nvrfw/nvr/ringstore"
)

// FrameReader yields one stream's frames in order; *ringstore.FrameReader
// implements it.
type FrameReader interface {
	// Next returns the next frame, or io.EOF after the last one.
	Next() (ringstore.ReadFrame, error)
	// Close releases the reader.
	Close() error
}

// Source opens frame readers over recorded footage. Frames must start at the
// keyframe at or before from and end before to, as (*ringstore.Store).Frames
// does; adapt the store with SourceFunc(store.Frames).
type Source interface {
	Frames(stream string, from, to time.Time) (FrameReader, error)
}

// SourceFunc adapts a Frames function that returns a concrete reader type,
// such as (*ringstore.Store).Frames, to a Source.
func SourceFunc[R FrameReader](frames func(stream string, from, to time.Time) (R, error)) Source {
	return sourceFunc(func(stream string, from, to time.Time) (FrameReader, error) {
		r, err := frames(stream, from, to)
		if err != nil {
			return nil, err
		}
		return r, nil
	})
}

type sourceFunc func(stream string, from, to time.Time) (FrameReader, error)

func (f sourceFunc) Frames(stream string, from, to time.Time) (FrameReader, error) {
	return f(stream, from, to)
}

// Errors callers act on.
var (
	// ErrNoFootage: the range holds no exportable footage (no keyframe of
	// the stream's video track, or no frame at all, before To).
	ErrNoFootage = errors.New("clip: no footage in the range")
	// ErrParamsChanged is the Plan.CutReason when a track's codec
	// parameters changed inside the range: the clip ends at the change.
	ErrParamsChanged = errors.New("clip: codec parameters changed; the clip ends at the change")
	// ErrSizeLimit is the Plan.CutReason when the clip reached
	// Options.MaxBytes or Options.MaxDuration: the clip ends there.
	ErrSizeLimit = errors.New("clip: clip reached its size or duration limit")
	// ErrSourceChanged: footage read while writing differs from footage
	// read while planning (typically evicted by the ring in between).
	ErrSourceChanged = errors.New("clip: footage changed while exporting (evicted?)")
)

// Limits of the progressive MP4 that pmp4 writes (32-bit offsets and
// durations).
const (
	maxFileBytes       = math.MaxUint32
	headerAllowance    = 64 << 20
	defaultMaxBytes    = maxFileBytes - headerAllowance
	defaultMaxDuration = 12 * time.Hour
	defaultMaxBuffered = 64 << 20
)

// Options says what to export.
type Options struct {
	// Stream is the recorded stream's name (required).
	Stream string
	// From and To bound the range (required, From before To). The clip
	// starts at the keyframe at or before From and holds frames before To.
	From, To time.Time
	// MaxBytes bounds the clip's sample bytes; the clip is cut (CutReason
	// ErrSizeLimit) before the frame that would exceed it. 0: 4 GiB minus
	// 64 MiB, the most a 32-bit progressive MP4 can hold with its header.
	MaxBytes int64
	// MaxDuration bounds the clip's length from its first keyframe, cut
	// like MaxBytes. 0: 12 h (32-bit durations at 90 kHz overflow at 13 h).
	MaxDuration time.Duration
	// MaxBuffered bounds the frame bytes held while re-reading footage in
	// the MP4's interleaving order (tracks are read in store order and
	// written in decode-time order). 0: 64 MiB.
	MaxBuffered int64
	// Progress, when set, is called from the exporting goroutine as the
	// scan and the write advance.
	Progress func(Progress)
}

// Phase is a stage of an export.
type Phase int

// Phases of an export.
const (
	// PhaseScan: reading frame times and sizes to build the MP4 header;
	// Progress.Done and Total are nanoseconds of footage.
	PhaseScan Phase = iota
	// PhaseWrite: writing the file; Done and Total are bytes.
	PhaseWrite
)

// Progress reports how far an export is.
type Progress struct {
	Phase       Phase
	Done, Total int64
}

func (o *Options) validate() error {
	if o.Stream == "" {
		return errors.New("clip: options: Stream is required")
	}
	if o.From.IsZero() || o.To.IsZero() || !o.From.Before(o.To) {
		return fmt.Errorf("clip: options: need From before To (got %v .. %v)", o.From, o.To)
	}
	if o.MaxBytes < 0 || o.MaxDuration < 0 || o.MaxBuffered < 0 {
		return errors.New("clip: options: negative limit")
	}
	if o.MaxBytes == 0 || o.MaxBytes > defaultMaxBytes {
		o.MaxBytes = defaultMaxBytes
	}
	if o.MaxDuration == 0 || o.MaxDuration > defaultMaxDuration {
		o.MaxDuration = defaultMaxDuration
	}
	if o.MaxBuffered == 0 {
		o.MaxBuffered = defaultMaxBuffered
	}
	return nil
}

func (o *Options) progress(p Phase, done, total int64) {
	if o.Progress != nil {
		o.Progress(Progress{Phase: p, Done: done, Total: total})
	}
}

// TrackInfo describes one track of the clip.
type TrackInfo struct {
	// Track is the recorded track (its ID is the store's track ID).
	Track ringstore.Track
	// MP4ID is the track's ID in the MP4 file.
	MP4ID int
	// Samples is the number of frames exported.
	Samples int
	// Duration is the track's length in the file.
	Duration time.Duration
}

// OmittedTrack is a recorded track left out of the clip, with why.
type OmittedTrack struct {
	Track  ringstore.Track
	Reason string
}

// Plan is a prepared export: the clip's header is built and its size known;
// Write and WriteRange re-read the frames and write the file. A Plan is
// read-only once prepared: it may be written many times, concurrently (each
// write opens its own reader), e.g. one per HTTP Range request.
type Plan struct {
	// Stream is the exported stream.
	Stream string
	// Start is the time of the clip's first keyframe: time 0 in the file.
	Start time.Time
	// End is the end of the clip's last frame.
	End time.Time
	// CutAt and CutReason are set when the clip ends before Options.To:
	// CutReason is ErrParamsChanged or ErrSizeLimit, and footage from
	// CutAt on can be exported as a further clip.
	CutAt     time.Time
	CutReason error
	// Tracks are the clip's tracks, in MP4 order.
	Tracks []TrackInfo
	// Omitted are recorded tracks left out (G.711, unknown codecs).
	Omitted []OmittedTrack
	// Gaps are the holes in the footage inside the clip. Real time is kept
	// across them: the frame before a gap lasts until the next frame.
	Gaps []ringstore.Gap

	src    Source
	opts   Options
	tracks []*trackPlan // exported tracks, in MP4 order
	byID   map[uint8]*trackPlan
	order  []uint8 // mdat order: index in tracks of each sample
	header []byte  // ftyp, moov and the mdat box header
	size   int64
	readTo time.Time // just after the last sample: the end of re-reads
	// resumable: decoding times never decrease within a track, so a range
	// can re-read footage from shortly before it rather than from Start.
	resumable bool
}

// Size returns the clip's total size in bytes.
func (p *Plan) Size() int64 { return p.size }

// Name returns a file name for the clip: the stream (characters outside
// [A-Za-z0-9._-] replaced by '_') and its start time in UTC.
func (p *Plan) Name() string {
	safe := []byte(p.Stream)
	for i, c := range safe {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			safe[i] = '_'
		}
	}
	return string(safe) + "_" + p.Start.UTC().Format("20060102T150405Z") + ".mp4"
}

// ModTime returns the end of the clip's footage.
func (p *Plan) ModTime() time.Time { return p.End }

// HeaderSize returns the size of the clip's header (ftyp, moov, mdat box
// header): bytes before it are served without reading footage.
func (p *Plan) HeaderSize() int64 { return int64(len(p.header)) }

// Write prepares the export of opts' range of src and writes it to w as one
// progressive MP4. It returns the plan (how the clip was cut, its tracks)
// even when writing fails after planning.
func Write(ctx context.Context, w io.Writer, src Source, opts Options) (*Plan, error) {
	p, err := Prepare(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	if _, err := p.Write(ctx, w); err != nil {
		return p, err
	}
	return p, nil
}

// Write writes the whole clip to w and returns the bytes written.
func (p *Plan) Write(ctx context.Context, w io.Writer) (int64, error) {
	return p.writeRange(ctx, w, 0, p.size)
}

// WriteRange writes bytes [off, off+n) of the clip to w, as an HTTP Range
// request needs. A range within the header reads no footage; otherwise
// footage is re-read from shortly before the range's first sample (from
// the clip's start when a track's decoding times go backwards).
func (p *Plan) WriteRange(ctx context.Context, w io.Writer, off, n int64) error {
	if off < 0 || n < 0 || off+n > p.size {
		return fmt.Errorf("clip: range %d+%d outside the clip's %d bytes", off, n, p.size)
	}
	_, err := p.writeRange(ctx, w, off, n)
	return err
}

func (p *Plan) writeRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	cw := &rangeWriter{w: w, skip: off, left: n}
	report := func() { p.opts.progress(PhaseWrite, off+cw.written, p.size) }
	report()
	if _, err := cw.Write(p.header); err != nil && !errors.Is(err, errRangeDone) {
		return cw.written, fmt.Errorf("clip: write header: %w", err)
	}
	if cw.left == 0 {
		report()
		return cw.written, nil
	}
	// Find the first sample the range needs and where each track resumes.
	k, pos := 0, int64(len(p.header))
	next := make([]int, len(p.tracks))
	for ; k < len(p.order) && p.resumable; k++ {
		tp := p.tracks[p.order[k]]
		size := int64(tp.samples[next[tp.idx]].size)
		if pos+size > off {
			break
		}
		pos += size
		next[tp.idx]++
	}
	cw.skip = max(off-pos, 0)
	from := p.scanFrom()
	if k > 0 {
		// Re-read from a little before the earliest sample still needed:
		// the store starts at the keyframe at or before it, and audio may
		// be stored shortly before the video of the same time.
		first := int64(math.MaxInt64)
		for i, tp := range p.tracks {
			if next[i] < len(tp.samples) {
				first = min(first, tp.samples[next[i]].dts())
			}
		}
		from = p.Start.Add(time.Duration(first) - rereadMargin)
	}
	r, err := p.src.Frames(p.Stream, from, p.readTo)
	if err != nil {
		return cw.written, fmt.Errorf("clip: reopen footage of %s: %w", p.Stream, err)
	}
	defer r.Close()
	pl := &payloader{ctx: ctx, r: r, p: p, next: next, dups: make([]int, len(p.tracks)),
		queue: make([][][]byte, len(p.tracks)), byDTS: k > 0}
	for i, tp := range p.tracks {
		if k == 0 {
			break
		}
		// Frames before the resume point with the same time as it are
		// read again first: skip them by count.
		if n := next[i]; n < len(tp.samples) {
			for j := n - 1; j >= 0 && tp.samples[j].dts() == tp.samples[n].dts(); j-- {
				pl.dups[i]++
			}
		}
	}
	last := cw.written
	for ; k < len(p.order) && cw.left > 0; k++ {
		b, err := pl.get(p.tracks[p.order[k]])
		if err != nil {
			return cw.written, fmt.Errorf("clip: write samples: %w", err)
		}
		if _, err := cw.Write(b); err != nil && !errors.Is(err, errRangeDone) {
			return cw.written, fmt.Errorf("clip: write samples: %w", err)
		}
		if cw.written-last >= 1<<20 {
			last = cw.written
			report()
		}
	}
	report()
	if cw.left != 0 {
		return cw.written, fmt.Errorf("clip: wrote %d bytes of the range, %d missing", cw.written, cw.left)
	}
	return cw.written, nil
}

// rereadMargin is how far before a Range's first sample footage is re-read.
const rereadMargin = 3 * time.Second

// errRangeDone stops a write once its range is complete.
var errRangeDone = errors.New("clip: range complete")

// rangeWriter passes bytes [skip, skip+left) of what is written through to w.
type rangeWriter struct {
	w       io.Writer
	skip    int64
	left    int64
	written int64
}

func (r *rangeWriter) Write(b []byte) (int, error) {
	n := len(b)
	if r.skip >= int64(len(b)) {
		r.skip -= int64(len(b))
		return n, nil
	}
	b = b[r.skip:]
	r.skip = 0
	if r.left == 0 {
		return 0, errRangeDone
	}
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	m, err := r.w.Write(b)
	r.written += int64(m)
	r.left -= int64(m)
	if err != nil {
		return 0, err
	}
	if r.left == 0 {
		return n, errRangeDone
	}
	return n, nil
}

// trackPlan is one exported track's sample table, built by the scan.
type trackPlan struct {
	track   ringstore.Track
	codec   mp4.Codec
	video   bool
	params  paramSets // in-band parameter sets of the first keyframe
	samples []sampleMeta
	idx     int // index in Plan.tracks; -1 while not exported
}

// sampleMeta is what the scan keeps of a frame: 24 bytes, no payload.
type sampleMeta struct {
	pts    int64 // presentation time, ns after Plan.Start
	dtsOff int64 // presentation minus decoding time, ns
	size   uint32
	key    bool
}

// dts is the sample's decoding time, ns after Plan.Start.
func (s sampleMeta) dts() int64 { return s.pts - s.dtsOff }
