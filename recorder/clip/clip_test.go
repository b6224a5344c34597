package clip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// t0 is where test footage starts on the wall clock.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// export writes the range to a file and returns its path and plan.
func export(t *testing.T, src Source, opts Options) (string, *Plan) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := Write(context.Background(), f, src, opts)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != p.Size() {
		t.Fatalf("file has %d bytes, plan said %d", st.Size(), p.Size())
	}
	return path, p
}

// checkClip verifies a clip with ffprobe and ffmpeg: codecs, video frame
// count, duration within 1 %, timestamps monotonic per stream, first video
// packet a keyframe at time 0, clean decode.
func checkClip(t *testing.T, path string, wantCodecs []string, wantTag string, wantVideoFrames int, wantDur float64) probe {
	t.Helper()
	pr := runProbe(t, path)
	if len(pr.Streams) != len(wantCodecs) {
		t.Fatalf("%d streams, want %d: %+v", len(pr.Streams), len(wantCodecs), pr.Streams)
	}
	for i, c := range wantCodecs {
		if pr.Streams[i].CodecName != c {
			t.Errorf("stream %d codec %s, want %s", i, pr.Streams[i].CodecName, c)
		}
	}
	if pr.Streams[0].CodecTag != wantTag {
		t.Errorf("video codec tag %s, want %s", pr.Streams[0].CodecTag, wantTag)
	}
	if pr.Streams[0].NbReadFrames != strconv.Itoa(wantVideoFrames) {
		t.Errorf("video frames %s, want %d", pr.Streams[0].NbReadFrames, wantVideoFrames)
	}
	if d := parseSeconds(t, pr.Streams[0].Duration); math.Abs(d-wantDur) > wantDur/100 {
		t.Errorf("video duration %.3f s, want %.3f s within 1%%", d, wantDur)
	}
	if d := parseSeconds(t, pr.Format.Duration); math.Abs(d-wantDur) > wantDur/100 {
		t.Errorf("file duration %.3f s, want %.3f s within 1%%", d, wantDur)
	}
	lastDTS := map[int]float64{}
	first := true
	firstAudio := true
	for i, pk := range pr.Packets {
		if pk.StreamIndex == 1 && firstAudio {
			// Audio starts with the first picture (within an AAC frame).
			firstAudio = false
			if pts := parseSeconds(t, pk.PTSTime); pts < 0 || pts > 0.05 {
				t.Errorf("first audio packet at %.4f s, want within 50 ms after the first picture", pts)
			}
		}
		dts := parseSeconds(t, pk.DTSTime)
		if prev, ok := lastDTS[pk.StreamIndex]; ok && dts <= prev {
			t.Fatalf("packet %d of stream %d: dts %.4f after %.4f", i, pk.StreamIndex, dts, prev)
		}
		lastDTS[pk.StreamIndex] = dts
		if pk.StreamIndex == 0 && first {
			first = false
			if pts := parseSeconds(t, pk.PTSTime); pts != 0 || pk.Flags[0] != 'K' {
				t.Errorf("first video packet pts %.4f flags %s, want a keyframe at 0", pts, pk.Flags)
			}
		}
	}
	decodeClean(t, path)
	return pr
}

func TestExportCodecs(t *testing.T) {
	tests := []struct {
		name    string
		spec    encodeSpec
		codecs  []string
		tag     string
		from    float64
		to      float64
		start   float64 // keyframe the clip starts at
		frames  int
		seconds float64
	}{
		// 25 fps, keyframe every second: from 2.5 s starts at the 2 s keyframe,
		// frames before 5.5 s: 2.00 .. 5.48 = 88 frames, 3.52 s.
		{"h264-aac", encodeSpec{codec: ringstore.CodecH264, audio: true}, []string{"h264", "aac"}, "avc1", 2.5, 5.5, 2, 88, 3.52},
		{"h265-aac", encodeSpec{codec: ringstore.CodecH265, audio: true}, []string{"hevc", "aac"}, "hvc1", 2.5, 5.5, 2, 88, 3.52},
		{"h264-bframes", encodeSpec{codec: ringstore.CodecH264, bframes: 2, audio: true}, []string{"h264", "aac"}, "avc1", 1, 4, 1, 75, 3.0},
		{"h265-bframes", encodeSpec{codec: ringstore.CodecH265, bframes: 3, audio: true}, []string{"hevc", "aac"}, "hvc1", 1, 4, 1, 75, 3.0},
		{"h264-opus", encodeSpec{codec: ringstore.CodecH264, audio: true, opus: true}, []string{"h264", "opus"}, "avc1", 2.5, 5.5, 2, 88, 3.52},
		{"h265-video-only-from-keyframe", encodeSpec{codec: ringstore.CodecH265}, []string{"hevc"}, "hvc1", 3, 5, 3, 50, 2.0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := encode(t, tc.spec)
			src := newFakeSource()
			src.add("cam1", rec, t0, nil)
			path, p := export(t, src, Options{Stream: "cam1", From: sec(tc.from), To: sec(tc.to)})
			if !p.Start.Equal(sec(tc.start)) {
				t.Errorf("clip starts at %v, want the keyframe at %v", p.Start.Sub(t0), sec(tc.start).Sub(t0))
			}
			if p.CutReason != nil || len(p.Omitted) != 0 || len(p.Gaps) != 0 {
				t.Errorf("cut %v omitted %v gaps %v, want none", p.CutReason, p.Omitted, p.Gaps)
			}
			checkClip(t, path, tc.codecs, tc.tag, tc.frames, tc.seconds)
		})
	}
}

func TestExportParamsChange(t *testing.T) {
	// 4 s at 320x240, then the camera switches to 480x360.
	a := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 4, audio: true})
	b := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 4, width: 480, audio: true})
	src := newFakeSource()
	src.add("cam1", a, t0, nil)
	src.add("cam1", b, sec(4), nil)
	path, p := export(t, src, Options{Stream: "cam1", From: sec(1), To: sec(7)})
	if !errors.Is(p.CutReason, ErrParamsChanged) || !p.CutAt.Equal(sec(4)) {
		t.Fatalf("cut %v at %v, want ErrParamsChanged at 4 s", p.CutReason, p.CutAt.Sub(t0))
	}
	// 1 s .. 4 s: 75 frames, 3 s.
	pr := checkClip(t, path, []string{"h264", "aac"}, "avc1", 75, 3)
	if pr.Streams[0].Width != 320 {
		t.Errorf("width %d, want 320", pr.Streams[0].Width)
	}
	// The rest is a clip of its own.
	path2, p2 := export(t, src, Options{Stream: "cam1", From: p.CutAt, To: sec(7)})
	if p2.CutReason != nil {
		t.Fatalf("second clip cut: %v", p2.CutReason)
	}
	pr = checkClip(t, path2, []string{"h264", "aac"}, "avc1", 75, 3)
	if pr.Streams[0].Width != 480 {
		t.Errorf("second clip width %d, want 480", pr.Streams[0].Width)
	}
}

// TestExportInbandParamsChange: the camera changes resolution but the
// recorder never sets new tracks; the in-band parameter sets of the next
// keyframe differ from the clip's, so the clip is cut there all the same.
func TestExportInbandParamsChange(t *testing.T) {
	a := encode(t, encodeSpec{codec: ringstore.CodecH265, seconds: 3})
	b := encode(t, encodeSpec{codec: ringstore.CodecH265, seconds: 3, width: 480})
	b.tracks = nil
	src := newFakeSource()
	src.add("cam1", a, t0, nil)
	src.add("cam1", b, sec(3), nil)
	path, p := export(t, src, Options{Stream: "cam1", From: sec(1), To: sec(5)})
	if !errors.Is(p.CutReason, ErrParamsChanged) || !p.CutAt.Equal(sec(3)) {
		t.Fatalf("cut %v at %v, want ErrParamsChanged at 3 s", p.CutReason, p.CutAt.Sub(t0))
	}
	checkClip(t, path, []string{"hevc"}, "hvc1", 50, 2)
}

func TestExportAcrossGap(t *testing.T) {
	// 0..3 s recorded, camera offline 3..5 s, 5..8 s recorded.
	a := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 3, audio: true})
	b := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 3, audio: true, toneFreq: 880})
	src := newFakeSource()
	src.add("cam1", a, t0, nil)
	cause := ringstore.GapCameraOffline
	src.add("cam1", b, sec(5), &cause)
	path, p := export(t, src, Options{Stream: "cam1", From: sec(2), To: sec(7)})
	if len(p.Gaps) != 1 || p.Gaps[0].Cause != ringstore.GapCameraOffline {
		t.Fatalf("gaps %+v, want one camera-offline gap", p.Gaps)
	}
	// 2..3 s (25 frames) + 5..7 s (50 frames), real time kept: 5 s.
	checkClip(t, path, []string{"h264", "aac"}, "avc1", 75, 5)

	// From inside the gap: the store starts at the 2 s keyframe, but that
	// footage ends before From; the clip starts after the gap.
	path, p = export(t, src, Options{Stream: "cam1", From: sec(4.5), To: sec(7)})
	if !p.Start.Equal(sec(5)) || len(p.Gaps) != 0 {
		t.Fatalf("clip from inside the gap starts at %v with gaps %+v, want 5 s and none", p.Start.Sub(t0), p.Gaps)
	}
	checkClip(t, path, []string{"h264", "aac"}, "avc1", 50, 2)
}

func TestExportOmitsG711(t *testing.T) {
	rec := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 3})
	rec.tracks = append(rec.tracks, ringstore.Track{ID: 2, Codec: ringstore.CodecPCMU, ClockRate: 8000, Channels: 1})
	var frames []ringstore.Frame
	for i, f := range rec.frames {
		frames = append(frames, f)
		if i%2 == 0 { // 20 ms of G.711 per 40 ms frame is enough to interleave
			frames = append(frames, ringstore.Frame{Track: 2, Time: f.Time, Key: true, Data: make([]byte, 160)})
		}
	}
	rec.frames = frames
	src := newFakeSource()
	src.add("cam1", rec, t0, nil)
	path, p := export(t, src, Options{Stream: "cam1", From: t0, To: sec(3)})
	if len(p.Omitted) != 1 || p.Omitted[0].Track.Codec != ringstore.CodecPCMU {
		t.Fatalf("omitted %+v, want the G.711 track", p.Omitted)
	}
	checkClip(t, path, []string{"h264"}, "avc1", 75, 3)
}

func TestExportErrors(t *testing.T) {
	rec := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 2, audio: true})
	src := newFakeSource()
	src.add("cam1", rec, t0, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		opts Options
		want error
	}{
		{"after the footage", Options{Stream: "cam1", From: sec(10), To: sec(20)}, ErrNoFootage},
		{"unknown stream", Options{Stream: "cam9", From: t0, To: sec(1)}, ErrNoFootage},
		{"no stream", Options{From: t0, To: sec(1)}, nil},
		{"empty range", Options{Stream: "cam1", From: sec(1), To: sec(1)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Prepare(ctx, src, tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Prepare: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("evicted between passes", func(t *testing.T) {
		p, err := Prepare(ctx, src, Options{Stream: "cam1", From: t0, To: sec(2)})
		if err != nil {
			t.Fatal(err)
		}
		es := src.streams["cam1"]
		src.streams["cam1"] = es[:len(es)/2]
		defer func() { src.streams["cam1"] = es }()
		var buf bytes.Buffer
		if _, err := p.Write(ctx, &buf); !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("Write after eviction: %v, want ErrSourceChanged", err)
		}
	})
	t.Run("size limit", func(t *testing.T) {
		p, err := Prepare(ctx, src, Options{Stream: "cam1", From: t0, To: sec(2), MaxBytes: 20000})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(p.CutReason, ErrSizeLimit) || !p.CutAt.After(t0) || !p.CutAt.Before(sec(2)) {
			t.Fatalf("cut %v at %v, want ErrSizeLimit inside the range", p.CutReason, p.CutAt.Sub(t0))
		}
		if p.Size() > 20000+int64(len(p.header)) {
			t.Fatalf("clip of %d bytes, header %d, over the limit", p.Size(), len(p.header))
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Prepare(cctx, src, Options{Stream: "cam1", From: t0, To: sec(2)}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Prepare: %v, want context.Canceled", err)
		}
	})
}

func TestWriteRange(t *testing.T) {
	for _, bframes := range []int{0, 2} {
		t.Run(fmt.Sprintf("bframes=%d", bframes), func(t *testing.T) { testWriteRange(t, bframes) })
	}
}

func testWriteRange(t *testing.T, bframes int) {
	rec := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 12, audio: true, bframes: bframes})
	src := newFakeSource()
	src.add("cam1", rec, t0, nil)
	ctx := context.Background()
	p, err := Prepare(ctx, src, Options{Stream: "cam1", From: t0, To: sec(12)})
	if err != nil {
		t.Fatal(err)
	}
	var whole bytes.Buffer
	reads := src.reads.Load()
	n, err := p.Write(ctx, &whole)
	if err != nil || n != p.Size() || int64(whole.Len()) != p.Size() {
		t.Fatalf("Write: %d bytes, %v; buffer %d, plan %d", n, err, whole.Len(), p.Size())
	}
	wholeReads := src.reads.Load() - reads
	size, hdr := p.Size(), p.HeaderSize()
	tests := []struct {
		off, n   int64
		maxReads int64 // frames the range may read from the store
	}{
		{0, size, wholeReads}, {0, 1, 0}, {0, hdr, 0}, {hdr - 3, 10, wholeReads}, {hdr, 1, wholeReads},
		{hdr + 1000, 5000, wholeReads}, {size / 2, size / 4, wholeReads}, {size - 1, 1, wholeReads / 2},
		{size - 40000, 40000, wholeReads / 2}, {size, 0, 0}, {7, 0, 0},
	}
	for _, tc := range tests {
		// Serially first, to count the frames each range reads.
		opens, reads := src.opens.Load(), src.reads.Load()
		var part bytes.Buffer
		if err := p.WriteRange(ctx, &part, tc.off, tc.n); err != nil {
			t.Fatalf("WriteRange(%d, %d): %v", tc.off, tc.n, err)
		}
		if !bytes.Equal(part.Bytes(), whole.Bytes()[tc.off:tc.off+tc.n]) {
			t.Fatalf("WriteRange(%d, %d): %d bytes differ from the whole file's", tc.off, tc.n, part.Len())
		}
		if r := src.reads.Load() - reads; r > tc.maxReads {
			t.Errorf("WriteRange(%d, %d) read %d frames, want at most %d", tc.off, tc.n, r, tc.maxReads)
		}
		if tc.off+tc.n <= hdr && src.opens.Load() != opens {
			t.Errorf("WriteRange(%d, %d) inside the header opened a reader", tc.off, tc.n)
		}
	}
	// A range may start at any sample (B-frames: resuming between frames
	// whose presentation times go backwards).
	pos, next := hdr, make([]int, len(p.tracks))
	for _, ti := range p.order {
		n := min(2000, size-pos)
		var part bytes.Buffer
		if err := p.WriteRange(ctx, &part, pos, n); err != nil || !bytes.Equal(part.Bytes(), whole.Bytes()[pos:pos+n]) {
			t.Fatalf("WriteRange at the sample at %d: %v", pos, err)
		}
		tp := p.tracks[ti]
		pos += int64(tp.samples[next[ti]].size)
		next[ti]++
	}
	// Then all at once: a Plan serves concurrent Range requests.
	var wg sync.WaitGroup
	for _, tc := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var part bytes.Buffer
			if err := p.WriteRange(ctx, &part, tc.off, tc.n); err != nil {
				t.Errorf("concurrent WriteRange(%d, %d): %v", tc.off, tc.n, err)
			} else if !bytes.Equal(part.Bytes(), whole.Bytes()[tc.off:tc.off+tc.n]) {
				t.Errorf("concurrent WriteRange(%d, %d): bytes differ", tc.off, tc.n)
			}
		}()
	}
	wg.Wait()
	if err := p.WriteRange(ctx, &bytes.Buffer{}, size-1, 2); err == nil {
		t.Error("WriteRange past the end: no error")
	}
	if name := p.Name(); name != "cam1_20261125T120000Z.mp4" {
		t.Errorf("Name %q", name)
	}
}

func TestProgress(t *testing.T) {
	rec := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 3, audio: true})
	src := newFakeSource()
	src.add("cam1", rec, t0, nil)
	var got []Progress
	opts := Options{Stream: "cam1", From: sec(0.5), To: sec(3), Progress: func(p Progress) { got = append(got, p) }}
	p, err := Write(context.Background(), io.Discard, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	var last [2]int64
	var ends [2]bool
	for i, g := range got {
		if i > 0 && g.Phase < got[i-1].Phase {
			t.Fatalf("update %d: phase %v after %v", i, g.Phase, got[i-1].Phase)
		}
		if g.Done < last[g.Phase] || g.Done > g.Total {
			t.Fatalf("update %d: %+v after %d", i, g, last[g.Phase])
		}
		last[g.Phase] = g.Done
		ends[g.Phase] = g.Done == g.Total
	}
	if !ends[PhaseScan] || !ends[PhaseWrite] || got[len(got)-1].Total != p.Size() {
		t.Fatalf("progress did not end at 100%% of each phase: %+v", got)
	}
}

// TestWriteRangeDuplicateTimes: a track may hold frames with equal times
// (the store allows it); a range resuming among them must not mistake one
// for another.
func TestWriteRangeDuplicateTimes(t *testing.T) {
	var es []fakeEntry
	for i := range 100 {
		at := t0.Add(time.Duration(i/4) * 40 * time.Millisecond) // 4 frames per time
		key := i%20 == 0
		es = append(es, fakeEntry{frame: ringstore.Frame{Time: at, Key: key, Data: avccFrame(100+i, key, i)}})
	}
	es[0].tracks = []ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{benchSPS, benchPPS}}}
	src := newFakeSource()
	src.streams["cam1"] = es
	ctx := context.Background()
	p, err := Prepare(ctx, src, Options{Stream: "cam1", From: t0, To: sec(10)})
	if err != nil {
		t.Fatal(err)
	}
	var whole bytes.Buffer
	if _, err := p.Write(ctx, &whole); err != nil {
		t.Fatal(err)
	}
	for off := p.HeaderSize(); off < p.Size(); off += 37 {
		var part bytes.Buffer
		if err := p.WriteRange(ctx, &part, off, p.Size()-off); err != nil || !bytes.Equal(part.Bytes(), whole.Bytes()[off:]) {
			t.Fatalf("WriteRange(%d, to the end): %v", off, err)
		}
	}
}

// TestExportSkewedStoreOrder: the recorder may append audio well after (or
// before) the video of the same time; the file interleaves by time anyway,
// holding read-ahead frames within Options.MaxBuffered.
func TestExportSkewedStoreOrder(t *testing.T) {
	rec := encode(t, encodeSpec{codec: ringstore.CodecH264, seconds: 4, audio: true})
	for _, skew := range []time.Duration{700 * time.Millisecond, -700 * time.Millisecond} {
		t.Run(fmt.Sprint("audio stored ", skew, " late"), func(t *testing.T) {
			// Store order: by time, audio shifted by skew.
			frames := append([]ringstore.Frame(nil), rec.frames...)
			key := func(f ringstore.Frame) time.Time {
				if f.Track == 1 {
					return f.Time.Add(skew)
				}
				return f.Time
			}
			sort.SliceStable(frames, func(i, j int) bool { return key(frames[i]).Before(key(frames[j])) })
			src := newFakeSource()
			src.add("cam1", recording{tracks: rec.tracks, frames: frames}, t0, nil)
			path, p := export(t, src, Options{Stream: "cam1", From: sec(1), To: sec(3.5)})
			checkClip(t, path, []string{"h264", "aac"}, "avc1", 63, 2.52)
			whole, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for off := p.HeaderSize(); off < p.Size(); off += 5000 {
				var part bytes.Buffer
				if err := p.WriteRange(context.Background(), &part, off, p.Size()-off); err != nil || !bytes.Equal(part.Bytes(), whole[off:]) {
					t.Fatalf("WriteRange(%d, to the end): %v", off, err)
				}
			}
			opts := Options{Stream: "cam1", From: sec(1), To: sec(3.5), MaxBuffered: 1000}
			if _, err := Write(context.Background(), io.Discard, src, opts); err == nil || !strings.Contains(err.Error(), "interleave") {
				t.Fatalf("with MaxBuffered 1000: %v, want the interleaving bound hit", err)
			}
		})
	}
}
