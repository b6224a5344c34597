package clip

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// Benchmark shape: one hour of the exported stream (25 fps H.264, 2 KiB
// frames, a keyframe a second, 16 kHz AAC at 15.6 frames/s) in a real store
// that interleaves it with 199 more streams (2 frames/s of 100 B), committed
// once per simulated second as the recorder does.
const (
	benchHours       = 1
	benchStreams     = 200
	benchFPS         = 25
	benchFrameBytes  = 2 << 10
	benchOtherFPS    = 2
	benchOtherBytes  = 100
	benchAudioRate   = 16000
	benchAudioSample = 1024
)

// benchSPS/benchPPS: a real x264 320x240 parameter set pair.
var (
	benchSPS = []byte("gB\xc0\r\xda\x05\a\xec\x04@\x00\x00\x03\x00@\x00\x00\f\x83\xc5\n\xa8")
	benchPPS = []byte("h\xce\x0f\xc8")
)

func avccFrame(size int, key bool, n int) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, size), uint32(size-4))
	b = append(b, 0x41, byte(n), byte(n>>8))
	if key {
		b[4] = 0x65
	}
	return b[:size]
}

// buildBenchStore records the benchmark's footage into a new store and
// returns it open, with the time its footage starts.
func buildBenchStore(b *testing.B) (*ringstore.Store, time.Time) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	secs := benchHours * 3600
	need := int64(secs) * (benchFPS*benchFrameBytes + benchAudioRate/benchAudioSample*16 + (benchStreams-1)*benchOtherFPS*benchOtherBytes)
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: need*2 + 256<<20}); err != nil {
		b.Fatal(err)
	}
	st, err := ringstore.Open(ctx, dir, ringstore.Options{CommitInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ws := make([]*ringstore.StreamWriter, benchStreams)
	for i := range ws {
		if ws[i], err = st.Stream(fmt.Sprintf("cam%03d", i)); err != nil {
			b.Fatal(err)
		}
		tracks := []ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{benchSPS, benchPPS}}}
		if i == 0 {
			tracks = append(tracks, ringstore.Track{ID: 1, Codec: ringstore.CodecAAC, ClockRate: benchAudioRate, Channels: 1,
				Config: [][]byte{{0x14, 0x08}}}) // AAC-LC, 16 kHz, mono
		}
		if err := ws[i].SetTracks(tracks); err != nil {
			b.Fatal(err)
		}
	}
	audioPeriod := time.Duration(benchAudioSample) * time.Second / benchAudioRate
	nextAudio := base
	for s := range secs {
		sec := base.Add(time.Duration(s) * time.Second)
		for f := range benchFPS {
			at := sec.Add(time.Duration(f) * time.Second / benchFPS)
			for ; nextAudio.Before(at); nextAudio = nextAudio.Add(audioPeriod) {
				if _, err := ws[0].Append(ringstore.Frame{Track: 1, Time: nextAudio, Key: true, Data: make([]byte, 16)}); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := ws[0].Append(ringstore.Frame{Time: at, Key: f == 0, Data: avccFrame(benchFrameBytes, f == 0, s*benchFPS+f)}); err != nil {
				b.Fatal(err)
			}
		}
		for i := 1; i < benchStreams; i++ {
			for f := range benchOtherFPS {
				at := sec.Add(time.Duration(f) * time.Second / benchOtherFPS)
				if _, err := ws[i].Append(ringstore.Frame{Time: at, Key: f == 0, Data: avccFrame(benchOtherBytes, f == 0, f)}); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := st.Flush(ctx); err != nil { // one commit per simulated second
			b.Fatal(err)
		}
	}
	return st, base
}

// firstByteWriter discards what is written, noting when the first byte came.
type firstByteWriter struct {
	n     int64
	first time.Time
}

func (w *firstByteWriter) Write(b []byte) (int, error) {
	if w.n == 0 && len(b) > 0 {
		w.first = time.Now()
	}
	w.n += int64(len(b))
	return len(b), nil
}

// BenchmarkExportHour exports one hour of one stream out of a store that
// interleaves 200 streams. Metrics: ttfb-s (Prepare, i.e. the scan and the
// header, until the first byte is written), MB/s (clip bytes over the whole
// export), plan-MB (heap held by the prepared plan), seek-1MB-s (a Range
// request for the clip's last MB, as a player seeking). Run it with
// -benchtime=1x: building the store takes minutes.
func BenchmarkExportHour(b *testing.B) {
	st, base := buildBenchStore(b)
	ctx := context.Background()
	src := SourceFunc(st.Frames)
	opts := Options{Stream: "cam000", From: base, To: base.Add(benchHours * time.Hour)}
	b.ResetTimer()
	var ttfb, total, seek time.Duration
	var size int64
	var planHeap uint64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		p, err := Prepare(ctx, src, opts)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if after.HeapAlloc > before.HeapAlloc {
			planHeap = after.HeapAlloc - before.HeapAlloc
		}
		w := &firstByteWriter{}
		if _, err := p.Write(ctx, w); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		if w.n != p.Size() {
			b.Fatalf("wrote %d bytes, plan says %d", w.n, p.Size())
		}
		if want := benchHours * 3600 * benchFPS; p.Tracks[0].Samples != want {
			b.Fatalf("%d video frames, want %d", p.Tracks[0].Samples, want)
		}
		ttfb += w.first.Sub(start)
		total += end.Sub(start)
		size = w.n
		// A player seeking to the last minute: a Range of 1 MB there.
		seekStart := time.Now()
		if err := p.WriteRange(ctx, &firstByteWriter{}, p.Size()-1<<20, 1<<20); err != nil {
			b.Fatal(err)
		}
		seek += time.Since(seekStart)
		runtime.KeepAlive(p)
	}
	b.ReportMetric(seek.Seconds()/float64(b.N), "seek-1MB-s")
	b.ReportMetric(ttfb.Seconds()/float64(b.N), "ttfb-s")
	b.ReportMetric(float64(size)*float64(b.N)/1e6/total.Seconds(), "MB/s")
	b.ReportMetric(float64(planHeap)/1e6, "plan-MB")
	b.ReportMetric(float64(size)/1e6, "clip-MB")
}
