package clip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"

	"github.com/nvrfw/nvr/ringstore"
)

// Prepare scans opts' range of src (first pass: frame times and sizes, no
// payload kept) and builds the clip's header. The returned Plan knows the
// clip's size; its Write methods re-read the frames (second pass).
func Prepare(ctx context.Context, src Source, opts Options) (*Plan, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := &Plan{Stream: opts.Stream, src: src, opts: opts, byID: map[uint8]*trackPlan{}}
	if err := p.scan(ctx); err != nil {
		return nil, err
	}
	if err := p.build(); err != nil {
		return nil, err
	}
	return p, nil
}

// scanState is the first pass's state.
type scanState struct {
	table    map[uint8]ringstore.Track // track table in force
	hasVideo bool
	started  bool
	bytes    int64
	last     time.Time // latest frame time taken
}

// scanFrom is where reads of the range start (see scan).
func (p *Plan) scanFrom() time.Time { return p.opts.From.Add(-rereadMargin) }

// rebase moves the clip's start to a later keyframe at start: video taken
// so far is dropped (decoding restarts at the keyframe), audio from start on
// is kept.
func (p *Plan) rebase(st *scanState, start time.Time) {
	shift := int64(start.Sub(p.Start))
	st.bytes = 0
	for _, tp := range p.byID {
		kept := tp.samples[:0]
		if !tp.video {
			for _, s := range tp.samples {
				if s.pts >= shift {
					s.pts -= shift
					kept = append(kept, s)
					st.bytes += int64(s.size)
				}
			}
		} else {
			tp.params = paramSets{}
		}
		tp.samples = kept
	}
	gaps := p.Gaps[:0]
	for _, g := range p.Gaps {
		if g.End.After(start) {
			gaps = append(gaps, g)
		}
	}
	p.Gaps, p.Start = gaps, start
}

// restart forgets the frames taken so far: the clip starts again at the
// next keyframe.
func (p *Plan) restart(st *scanState) {
	for _, tp := range p.byID {
		tp.samples, tp.params = nil, paramSets{}
	}
	st.started, st.bytes, st.last = false, 0, time.Time{}
	p.Gaps, p.Start = nil, time.Time{}
}

func (p *Plan) scan(ctx context.Context) error {
	// Read from a little before From: the clip still starts at the last
	// keyframe at or before From, but audio the recorder stored before
	// that keyframe's video (audio is usually encoded faster) is kept.
	r, err := p.src.Frames(p.Stream, p.scanFrom(), p.opts.To)
	if err != nil {
		return fmt.Errorf("clip: read footage of %s: %w", p.Stream, err)
	}
	defer r.Close()
	var st scanState
	span := int64(p.opts.To.Sub(p.opts.From))
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("clip: scan %s: %w", p.Stream, err)
			}
		}
		rf, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("clip: scan %s: %w", p.Stream, err)
		}
		if n%256 == 0 {
			p.opts.progress(PhaseScan, min(max(int64(rf.Time.Sub(p.opts.From)), 0), span), span)
		}
		if rf.Tracks != nil && p.newTable(&st, rf) {
			break // cut at a parameter change
		}
		if !p.takeFrame(&st, rf) {
			break // cut at a limit
		}
	}
	p.opts.progress(PhaseScan, span, span)
	if !st.started || st.last.Before(p.opts.From) {
		return fmt.Errorf("%w: %s %s .. %s", ErrNoFootage, p.Stream,
			p.opts.From.Format(time.RFC3339), p.opts.To.Format(time.RFC3339))
	}
	return nil
}

// newTable applies a track table carried by rf and reports whether the clip
// must end before rf because an exported track's parameters changed.
func (p *Plan) newTable(st *scanState, rf ringstore.ReadFrame) bool {
	next := make(map[uint8]ringstore.Track, len(rf.Tracks))
	for _, t := range rf.Tracks {
		next[t.ID] = t
	}
	if st.started && !rf.Time.After(p.opts.From) {
		p.restart(st) // a change before From: the clip starts after it
	}
	if !st.started {
		// Nothing exported yet: simply adopt the newest table.
		st.table = next
		clear(p.byID)
		p.Omitted = nil
		st.hasVideo = false
		for _, t := range rf.Tracks {
			if err := exportable(t.Codec); err != nil {
				p.Omitted = append(p.Omitted, OmittedTrack{Track: t, Reason: err.Error()})
				continue
			}
			p.byID[t.ID] = &trackPlan{track: t, video: t.Codec.IsVideo(), idx: -1}
			st.hasVideo = st.hasVideo || t.Codec.IsVideo()
		}
		return false
	}
	for id, tp := range p.byID {
		nt, ok := next[id]
		if !ok || sameTrack(tp.track, nt) {
			continue // a track that stops simply ends early
		}
		// A camera whose configuration had no parameter sets, which the
		// recorder learned later from the stream, is not a change.
		if tp.video && len(tp.track.Config) == 0 && sameParams(tp.params, configParams(nt)) &&
			nt.Codec == tp.track.Codec && nt.ClockRate == tp.track.ClockRate {
			tp.track.Config = nt.Config
			continue
		}
		p.CutAt, p.CutReason = rf.Time, ErrParamsChanged
		return true
	}
	for id, t := range next {
		if _, ok := st.table[id]; !ok {
			p.Omitted = append(p.Omitted, OmittedTrack{Track: t, Reason: "track appeared inside the clip"})
		}
	}
	st.table = next
	return false
}

// takeFrame adds rf to the sample tables when it belongs to the clip, and
// reports false when the clip must end before rf (a limit).
func (p *Plan) takeFrame(st *scanState, rf ringstore.ReadFrame) bool {
	if rf.Gap != nil && st.started {
		if st.last.Before(p.opts.From) {
			p.restart(st) // all footage so far ends before From: not wanted
		} else if len(p.Gaps) == 0 || !p.Gaps[len(p.Gaps)-1].Start.Equal(rf.Gap.Start) {
			p.Gaps = append(p.Gaps, *rf.Gap)
		}
	}
	tp := p.byID[rf.Track]
	if tp == nil || len(rf.Data) == 0 {
		return true // omitted or unknown track, or nothing to play
	}
	if !st.started {
		if st.hasVideo && !(tp.video && rf.Key) {
			return true // wait for the first video keyframe
		}
		st.started = true
		p.Start = rf.Time
	} else if tp.video && rf.Key && rf.Time.After(p.Start) && !rf.Time.After(p.opts.From) {
		p.rebase(st, rf.Time) // a later keyframe still at or before From
	}
	if rf.Time.Before(p.Start) {
		return true // audio before the first picture, or leading pictures
	}
	if tp.video && len(tp.samples) == 0 && !rf.Key {
		return true // a further video track starting mid-GOP
	}
	if tp.video && rf.Key {
		// Parameter sets repeated in-band must stay those of the clip's
		// first keyframe: a camera that changed them without the recorder
		// setting new tracks still cuts the clip.
		ib, _ := inbandParams(tp.track.Codec, rf.Data)
		if len(tp.samples) == 0 {
			tp.params = ib
		} else if changedParams(tp.params, ib) {
			p.CutAt, p.CutReason = rf.Time, ErrParamsChanged
			return false
		}
	}
	if st.bytes+int64(len(rf.Data)) > p.opts.MaxBytes || rf.Time.Sub(p.Start) >= p.opts.MaxDuration {
		p.CutAt, p.CutReason = rf.Time, ErrSizeLimit
		return false
	}
	if len(rf.Data) > math.MaxUint32 {
		p.CutAt, p.CutReason = rf.Time, ErrSizeLimit
		return false
	}
	st.bytes += int64(len(rf.Data))
	if rf.Time.After(st.last) {
		st.last = rf.Time
	}
	tp.samples = append(tp.samples, sampleMeta{
		pts:    int64(rf.Time.Sub(p.Start)),
		dtsOff: int64(rf.DTSOffset),
		size:   uint32(len(rf.Data)),
		key:    rf.Key,
	})
	return true
}

// build turns the scanned sample tables into the pmp4 presentation and
// renders the header.
func (p *Plan) build() error {
	if p.CutReason != nil {
		p.trimAfterCut()
	}
	ids := make([]int, 0, len(p.byID))
	for id := range p.byID {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	var end int64
	var pres pmp4.Presentation
	for _, id := range ids {
		tp := p.byID[uint8(id)]
		if len(tp.samples) == 0 {
			continue
		}
		params := configParams(tp.track)
		if tp.video && !params.complete(tp.track.Codec) {
			params = tp.params
		}
		codec, rate, err := trackCodec(tp.track, params)
		if err != nil {
			if tp.video {
				return fmt.Errorf("clip: %s track %d: %w", p.Stream, tp.track.ID, err)
			}
			p.Omitted = append(p.Omitted, OmittedTrack{Track: tp.track, Reason: err.Error()})
			continue
		}
		tp.codec = codec
		pt, dur, err := tp.timing(len(p.tracks)+1, rate)
		if err != nil {
			return fmt.Errorf("clip: %s track %d: %w", p.Stream, tp.track.ID, err)
		}
		tp.idx = len(p.tracks)
		p.tracks = append(p.tracks, tp)
		pres.Tracks = append(pres.Tracks, pt)
		p.Tracks = append(p.Tracks, TrackInfo{Track: tp.track, MP4ID: pt.ID, Samples: len(tp.samples), Duration: dur})
		end = max(end, int64(dur)+tp.samples[0].pts-tp.samples[0].dtsOff)
	}
	if len(p.tracks) == 0 {
		return fmt.Errorf("%w: %s has no exportable track in the range", ErrNoFootage, p.Stream)
	}
	if len(p.tracks) > math.MaxUint8 {
		return fmt.Errorf("clip: %s has %d tracks, more than %d", p.Stream, len(p.tracks), math.MaxUint8)
	}
	p.End = p.Start.Add(time.Duration(end))
	var lastPTS int64
	for _, tp := range p.tracks {
		for _, s := range tp.samples {
			lastPTS = max(lastPTS, s.pts)
		}
	}
	p.readTo = p.Start.Add(time.Duration(lastPTS) + 1)
	p.resumable = true
	for _, tp := range p.tracks {
		for i := 1; i < len(tp.samples); i++ {
			if tp.samples[i].dts() < tp.samples[i-1].dts() {
				p.resumable = false // decoding times go backwards: re-read from the start
			}
		}
	}
	return p.render(&pres)
}

// trimAfterCut drops the trailing frames at or after CutAt that other
// tracks had stored before the frame that cut the clip, so that the next
// clip (from CutAt) does not repeat them. Only a suffix of each track goes:
// video frames a kept frame may depend on stay.
func (p *Plan) trimAfterCut() {
	cut := int64(p.CutAt.Sub(p.Start))
	for _, tp := range p.byID {
		n := len(tp.samples)
		for n > 0 && tp.samples[n-1].pts >= cut {
			n--
		}
		tp.samples = tp.samples[:n]
	}
}

// ticks converts a duration to units of rate per second, rounding.
func ticks(d int64, rate uint32) int64 {
	sec, rem := d/int64(time.Second), d%int64(time.Second)
	return sec*int64(rate) + (rem*int64(rate)+int64(time.Second)/2)/int64(time.Second)
}

// timing fills a pmp4 track's samples from the scan: decoding times from
// presentation time minus DTSOffset, forced strictly increasing; each
// frame lasts until the next one (so gaps keep real time); the last frame
// lasts as long as the one before.
func (tp *trackPlan) timing(mp4ID int, rate uint32) (*pmp4.Track, time.Duration, error) {
	n := len(tp.samples)
	dts := make([]int64, n)
	for i, s := range tp.samples {
		dts[i] = ticks(s.pts-s.dtsOff, rate)
		if i > 0 && dts[i] <= dts[i-1] {
			dts[i] = dts[i-1] + 1
		}
	}
	// A first frame decoded before time 0 (B-frames: the keyframe has a
	// composition offset) would need pmp4's edit list, which then gets the
	// track's duration wrong by that offset. Shift decoding times instead
	// so that the keyframe decodes at 0: composition offsets may turn
	// negative, which pmp4's version-1 ctts allows.
	if dts[0] < 0 {
		shift := -dts[0]
		for i := range dts {
			dts[i] += shift
		}
	}
	if dts[0] > math.MaxInt32 {
		return nil, 0, fmt.Errorf("first frame %d ticks away from the clip start", dts[0])
	}
	store := make([]pmp4.Sample, n)
	t := &pmp4.Track{ID: mp4ID, TimeScale: rate, TimeOffset: int32(dts[0]), Codec: tp.codec, Samples: make([]*pmp4.Sample, n)}
	var total int64
	for i, s := range tp.samples {
		var d int64
		switch {
		case i+1 < n:
			d = dts[i+1] - dts[i]
		case n > 1:
			d = dts[i] - dts[i-1]
		default:
			d = defaultDuration(tp.video, rate)
		}
		off := ticks(s.pts, rate) - dts[i]
		if d > math.MaxUint32 || off < math.MinInt32 || off > math.MaxInt32 {
			return nil, 0, fmt.Errorf("frame %d: duration %d or composition offset %d out of range", i, d, off)
		}
		total += d
		store[i] = pmp4.Sample{Duration: uint32(d), PTSOffset: int32(off), IsNonSyncSample: !s.key, PayloadSize: s.size}
		t.Samples[i] = &store[i]
	}
	if total > math.MaxUint32 {
		return nil, 0, fmt.Errorf("track lasts %d ticks, more than 32 bits", total)
	}
	return t, time.Duration(total * int64(time.Second) / int64(rate)), nil
}

func defaultDuration(video bool, rate uint32) int64 {
	if video {
		return int64(rate) / 25
	}
	return 1024
}

// render marshals the clip once with empty payloads: the bytes written
// before the first payload is asked for are the header (ftyp, moov, mdat box
// header), and the order payloads are asked for is the mdat order.
func (p *Plan) render(pres *pmp4.Presentation) error {
	var hdr headerBuffer
	p.order = make([]uint8, 0, p.samples())
	for i := range p.tracks {
		get := func() ([]byte, error) {
			if hdr.header == nil {
				hdr.header = hdr.b
			}
			p.order = append(p.order, uint8(i))
			return nil, nil
		}
		for _, s := range pres.Tracks[i].Samples {
			s.GetPayload = get
		}
	}
	if err := pres.Marshal(&hdr); err != nil {
		return fmt.Errorf("clip: render MP4 header: %w", err)
	}
	if hdr.header == nil || len(hdr.b) != len(hdr.header) || len(p.order) != p.samples() {
		return fmt.Errorf("clip: render MP4 header: muxer wrote %d bytes and %d of %d samples unexpectedly",
			len(hdr.b), len(p.order), p.samples())
	}
	p.header = hdr.header
	var data int64
	for _, tp := range p.tracks {
		for _, s := range tp.samples {
			data += int64(s.size)
		}
	}
	p.size = int64(len(p.header)) + data
	if p.size > maxFileBytes {
		return fmt.Errorf("clip: %d bytes exceed the 4 GiB of a 32-bit MP4", p.size)
	}
	if err := patchHvc1(p.header); err != nil {
		return fmt.Errorf("clip: mark H.265 sample entry hvc1: %w", err)
	}
	return nil
}

func (p *Plan) samples() int {
	n := 0
	for _, tp := range p.tracks {
		n += len(tp.samples)
	}
	return n
}

type headerBuffer struct{ b, header []byte }

func (h *headerBuffer) Write(b []byte) (int, error) {
	h.b = append(h.b, b...)
	return len(b), nil
}

// payloader serves sample payloads in mdat order while reading the footage
// once, in store order (second pass). Frames read ahead of their turn wait
// in their track's queue, bounded by MaxBuffered. Each write has its own.
type payloader struct {
	ctx      context.Context
	r        FrameReader
	p        *Plan
	next     []int      // per exported track: next sample expected from the store
	dups     []int      // per exported track: frames at the next sample's time to skip first
	byDTS    bool       // resuming inside the clip: match frames on decoding time
	queue    [][][]byte // per exported track: payloads read ahead
	buffered int64
	reads    int
}

// get returns the payload of want's next sample.
func (pl *payloader) get(want *trackPlan) ([]byte, error) {
	if q := pl.queue[want.idx]; len(q) > 0 {
		b := q[0]
		q[0] = nil
		pl.queue[want.idx] = q[1:]
		pl.buffered -= int64(len(b))
		return b, nil
	}
	for {
		pl.reads++
		if pl.reads%256 == 0 {
			if err := pl.ctx.Err(); err != nil {
				return nil, err
			}
		}
		rf, err := pl.r.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: footage ends before frame %d of track %d", ErrSourceChanged, pl.next[want.idx], want.track.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("read footage: %w", err)
		}
		tp := pl.p.byID[rf.Track]
		if tp == nil || tp.idx < 0 || pl.next[tp.idx] >= len(tp.samples) {
			continue
		}
		i := pl.next[tp.idx]
		s := tp.samples[i]
		// Match on decoding time: it never decreases within a track in
		// store order, presentation time does with B-frames.
		pts := int64(rf.Time.Sub(pl.p.Start))
		if pts < 0 || len(rf.Data) == 0 {
			continue // never in a clip (as in the scan)
		}
		// Reading from the clip's start, frames come as in the scan: a
		// frame before the expected one was skipped by it. Resuming
		// inside the clip, frames before the expected one in store order
		// are recognised by their decoding time, which never decreases
		// within a track (presentation time does with B-frames).
		at, expect := pts, s.pts
		if pl.byDTS {
			at, expect = pts-int64(rf.DTSOffset), s.dts()
		}
		if at < expect {
			continue // skipped by the scan, or before the range
		}
		if at == expect && pl.dups[tp.idx] > 0 {
			pl.dups[tp.idx]--
			continue // a frame with the same time before the range
		}
		if pts != s.pts || int64(rf.DTSOffset) != s.dtsOff || len(rf.Data) != int(s.size) {
			return nil, fmt.Errorf("%w: track %d frame %d is at %v with %d bytes, expected %v with %d",
				ErrSourceChanged, tp.track.ID, i, time.Duration(pts), len(rf.Data), time.Duration(s.pts), s.size)
		}
		pl.next[tp.idx]++
		if tp == want {
			return rf.Data, nil
		}
		b := append([]byte(nil), rf.Data...)
		pl.queue[tp.idx] = append(pl.queue[tp.idx], b)
		pl.buffered += int64(len(b))
		if pl.buffered > pl.p.opts.MaxBuffered {
			return nil, fmt.Errorf("clip: tracks interleave more than %d bytes apart in the store", pl.p.opts.MaxBuffered)
		}
	}
}
