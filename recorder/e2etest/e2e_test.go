package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/recorder/clip"
	"github.com/nvrfw/nvr/ringstore"
)

// recordFor is the length of footage each test records and checks.
const recordFor = 30 * time.Second

// gop is the test clips' keyframe interval in frames (the frame-count
// tolerance).
const gop = 25

// tools returns the paths of ffmpeg and ffprobe: missing tools fail the test
// under CI=true and skip it otherwise.
func tools(t *testing.T) (ffmpeg, ffprobe string) {
	t.Helper()
	var missing []string
	var err error
	if ffmpeg, err = exec.LookPath("ffmpeg"); err != nil {
		missing = append(missing, "ffmpeg")
	}
	if ffprobe, err = exec.LookPath("ffprobe"); err != nil {
		missing = append(missing, "ffprobe")
	}
	if len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v not installed", missing)
		}
		t.Skipf("%v not installed: exports cannot be checked", missing)
	}
	return ffmpeg, ffprobe
}

// clipDir returns the repository's testdata/clips.
func clipDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "clips"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "h264.h264")); err != nil {
		t.Fatalf("test clips: %v", err)
	}
	return dir
}

// recording is what record leaves: the store (open) and the recorded window.
type recording struct {
	store    *ringstore.Store
	from, to time.Time
}

// record formats a store, records the cameras through one Manager until
// recordFor of footage after all of them started recording is in, stops the
// Manager and flushes the store. The store is closed at cleanup. Each camera
// must have recorded throughout on one connection, without drops or gaps.
func record(t *testing.T, cams ...recorder.Camera) recording {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 128 << 20, SlotSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := ringstore.Open(ctx, dir, ringstore.Options{CommitInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	m, err := recorder.NewManager(recorder.ManagerOptions{
		Writer: func(name string) (recorder.FrameWriter, error) { return st.Stream(name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, cam := range cams {
		if err := m.Add(cam); err != nil {
			t.Fatal(err)
		}
	}
	status := func(name string) recorder.Status { s, _ := m.Status(name); return s }
	deadline := time.Now().Add(20 * time.Second)
	for _, cam := range cams {
		for status(cam.Name).FramesRecorded < 2*gop {
			if time.Now().After(deadline) {
				t.Fatalf("%s: recording did not start within 20 s: %+v", cam.Name, status(cam.Name))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	from := time.Now()
	to := from.Add(recordFor)
	// Frames arrive a little after their capture time: wait until those
	// captured before to are surely in.
	time.Sleep(time.Until(to.Add(1500 * time.Millisecond)))
	var last []recorder.Status
	for _, cam := range cams {
		last = append(last, status(cam.Name))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range last {
		t.Logf("%s (%s): state %s, connects %d, recorded %d, dropped %d, gaps %v, decode errors %d, %.1f fps, %.0f bit/s",
			s.Name, s.Transport, s.State, s.Connects, s.FramesRecorded, s.FramesDropped, s.Gaps, s.DecodeErrors, s.FPS, s.Bitrate)
		if s.State != recorder.StateRecording || s.Connects != 1 || s.FramesDropped != 0 || s.GapCount() != 0 {
			t.Errorf("%s: want one connection recording throughout, no drops and no gaps; status %+v", s.Name, s)
		}
	}
	return recording{store: st, from: from, to: to}
}

// export writes [from, to) of the stream as an MP4 with recorder/clip.
func export(t *testing.T, rec recording, stream string) (string, *clip.Plan) {
	t.Helper()
	out := filepath.Join(t.TempDir(), stream+".mp4")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	plan, err := clip.Write(context.Background(), f, clip.SourceFunc(rec.store.Frames),
		clip.Options{Stream: stream, From: rec.from, To: rec.to})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if plan.CutReason != nil || len(plan.Gaps) > 0 {
		t.Errorf("export cut (%v at %v) or gaps %v", plan.CutReason, plan.CutAt, plan.Gaps)
	}
	return out, plan
}

// probed is what ffprobe reports of an exported file.
type probed struct {
	Streams []struct {
		Index        int    `json:"index"`
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		NbReadFrames string `json:"nb_read_frames"`
		Duration     string `json:"duration"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTSTime     string `json:"pts_time"`
		DTSTime     string `json:"dts_time"`
		Size        string `json:"size"`
	} `json:"packets"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// stream is one stream of a probed file with its packets.
type stream struct {
	codec    string
	frames   int // decoded (ffprobe -count_frames)
	duration float64
	pts, dts []float64
	sizes    []int
}

// probe runs ffprobe -count_frames on file and returns its video and audio
// streams (fatal when either is missing, or on decoding errors).
func probe(t *testing.T, ffprobe, file string) (video, audio stream, format float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-count_frames",
		"-show_entries", "stream=index,codec_type,codec_name,nb_read_frames,duration:packet=stream_index,pts_time,dts_time,size:format=duration",
		"-of", "json", file)
	var stderr stringsBuilder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, stderr.String())
	}
	if stderr.String() != "" {
		t.Errorf("ffprobe reports errors decoding %s:\n%.2000s", file, stderr.String())
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	byIndex := map[int]*stream{}
	for _, s := range p.Streams {
		st := &stream{codec: s.CodecName, frames: atoi(t, s.NbReadFrames), duration: atof(t, s.Duration)}
		switch s.CodecType {
		case "video":
			video = *st
			byIndex[s.Index] = &video
		case "audio":
			audio = *st
			byIndex[s.Index] = &audio
		}
	}
	if video.codec == "" || audio.codec == "" {
		t.Fatalf("%s: want a video and an audio stream, got %+v", file, p.Streams)
	}
	for _, pk := range p.Packets {
		s := byIndex[pk.StreamIndex]
		if s == nil {
			continue
		}
		s.pts = append(s.pts, atof(t, pk.PTSTime))
		s.dts = append(s.dts, atof(t, pk.DTSTime))
		s.sizes = append(s.sizes, atoi(t, pk.Size))
	}
	return video, audio, atof(t, p.Format.Duration)
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("ffprobe number %q: %v", s, err)
	}
	return n
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("ffprobe number %q: %v", s, err)
	}
	return f
}

// monotonic reports the first index where decoding time does not increase
// strictly, or presentation time goes back (-1: none).
func monotonic(s stream) int {
	for i := 1; i < len(s.dts); i++ {
		if s.dts[i] <= s.dts[i-1] || s.pts[i] < s.pts[i-1] {
			return i
		}
	}
	return -1
}

// framePeriod is the frame interval of every test source (25 fps).
const framePeriod = 40 * time.Millisecond

// checkExport is the check every test makes of an export: the codecs, every
// video packet decoded, timestamps monotonic, the video as long as its
// frames at 25 fps within 1 %, the clip as long as the recorded span
// (plan.Start to to) within 1 %, audio as long as video. It returns the
// video stream for the caller's frame-count check.
func checkExport(t *testing.T, ffprobe, file, videoCodec string, plan *clip.Plan, to time.Time) stream {
	t.Helper()
	video, audio, format := probe(t, ffprobe, file)
	nominal := time.Duration(len(video.sizes)) * framePeriod
	span := to.Sub(plan.Start)
	t.Logf("%s: video %s %d frames (%d packets) %.3f s; audio %s %d frames %.3f s; file %.3f s; %d frames at 25 fps last %.3f s; recorded span %.3f s",
		filepath.Base(file), video.codec, video.frames, len(video.sizes), video.duration,
		audio.codec, audio.frames, audio.duration, format, len(video.sizes), nominal.Seconds(), span.Seconds())
	if video.codec != videoCodec || audio.codec != "aac" {
		t.Errorf("codecs %s and %s, want %s and aac", video.codec, audio.codec, videoCodec)
	}
	if video.frames != len(video.sizes) || video.frames == 0 {
		t.Errorf("ffprobe decoded %d video frames of %d packets", video.frames, len(video.sizes))
	}
	for _, s := range []struct {
		name string
		s    stream
	}{{"video", video}, {"audio", audio}} {
		if i := monotonic(s.s); i >= 0 {
			t.Errorf("%s timestamps not monotonic at packet %d: pts %v dts %v after pts %v dts %v",
				s.name, i, s.s.pts[i], s.s.dts[i], s.s.pts[i-1], s.s.dts[i-1])
			// The packets around it, for whoever reads the failure.
			var b strings.Builder
			for j := max(0, i-8); j < min(len(s.s.pts), i+4); j++ {
				fmt.Fprintf(&b, "\n  %d: pts %.6f dts %.6f", j, s.s.pts[j], s.s.dts[j])
			}
			t.Logf("%s packets around %d:%s", s.name, i, b.String())
		}
	}
	within1 := func(what string, got, want float64) {
		if rel := math.Abs(got-want) / want; rel > 0.01 {
			t.Errorf("%s: %.3f s, want %.3f s within 1 %% (off by %.2f %%)", what, got, want, 100*rel)
		}
	}
	within1("video duration against its frame count", video.duration, nominal.Seconds())
	within1("video duration against the recorded span", video.duration, span.Seconds())
	// Audio frames last 64 ms (16 kHz AAC); the tracks start and end within
	// a frame or two of each other.
	if d := math.Abs(audio.duration - video.duration); d > 0.01*video.duration+0.15 {
		t.Errorf("audio lasts %.3f s, video %.3f s", audio.duration, video.duration)
	}
	return video
}

// checkAgainstSent finds the frames the simulator sent that the export
// holds (the run of sent frames, starting at a keyframe, whose sizes are
// the exported frames' sizes, in order) and checks that the export holds
// every frame sent from there until the end of the recorded window, within
// one GOP. It logs how far the recorded times are from the capture times.
func checkAgainstSent(t *testing.T, sim *camsim.Simulator, rec recording, plan *clip.Plan, video stream) {
	t.Helper()
	sent, err := sim.SentFrames("cam", plan.Start.Add(-3*time.Second), rec.to.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := len(video.sizes)
	first := -1
	for k := 0; k+n <= len(sent) && first < 0; k++ {
		if !sent[k].Key {
			continue
		}
		same := true
		for i := 0; i < n && same; i++ {
			same = sent[k+i].Size == video.sizes[i]
		}
		if same {
			first = k
		}
	}
	if first < 0 {
		t.Fatalf("the %d exported frames are no run of the %d frames sent around the window (sizes differ, or frames are missing)", n, len(sent))
	}
	want := 0
	for _, f := range sent[first:] {
		if f.Time.Before(rec.to) {
			want++
		}
	}
	t.Logf("export holds sent frames %d..%d; %d sent from its first frame until the window's end; recorded minus capture time: %v at the start, %v at the end",
		first, first+n-1, want, plan.Start.Sub(sent[first].Time), plan.End.Sub(sent[first+n-1].Time.Add(framePeriod)))
	if d := n - want; d < -gop || d > gop {
		t.Errorf("%d video frames exported, %d sent: more than one GOP (%d) apart", n, want, gop)
	}
}

// TestRecordSimulator records 30 s of H.264 and of H.265, each with AAC
// audio, from the camera simulator into a real store through the Manager,
// exports it with recorder/clip, and checks the export with ffprobe against
// the frames the simulator sent: the same frames (sizes, in order) and their
// count within one GOP, monotonic timestamps, duration within 1 %.
func TestRecordSimulator(t *testing.T) {
	t.Parallel()
	_, ffprobe := tools(t)
	clips := clipDir(t)
	for _, c := range []struct {
		name  string
		video camsim.VideoCodec
		codec string
	}{
		{"h264", camsim.H264, "h264"},
		{"h265", camsim.H265, "hevc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sim, err := camsim.New(camsim.Options{Address: "127.0.0.1:0", ClipDir: clips, SenderReportPeriod: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := sim.AddPath("cam", camsim.PathConfig{Video: c.video, Audio: camsim.AAC}); err != nil {
				t.Fatal(err)
			}
			if err := sim.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			rec := record(t, recorder.Camera{Name: c.name, URL: sim.URL("cam")})
			file, plan := export(t, rec, c.name)
			checkAgainstSent(t, sim, rec, plan, checkExport(t, ffprobe, file, c.codec, plan, rec.to))
		})
	}
}
