package clip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/nvrfw/nvr/ringstore"
)

// needTool returns the path of an external tool, failing under CI and
// skipping elsewhere when it is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI: %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install ffmpeg): %v", name, err)
	}
	return p
}

// encodeSpec says what test footage to make with ffmpeg.
type encodeSpec struct {
	codec    ringstore.Codec // H264 or H265
	width    int             // 0: 320
	seconds  int             // 0: 6
	fps      int             // 0: 25
	gop      int             // 0: fps (one keyframe a second)
	bframes  int             // 0: none
	audio    bool            // AAC 48 kHz mono alongside
	opus     bool            // with audio: Opus instead of AAC
	toneFreq int             // 0: 440
}

// recording is test footage as the store would hold it: the track table and
// frames in store (arrival) order, times relative to time zero.
type recording struct {
	tracks []ringstore.Track
	frames []ringstore.Frame
}

// encode makes footage with ffmpeg (MPEG-TS with Annex-B video and ADTS
// audio) and converts it to store frames: AVCC access units, raw AAC.
func encode(t testing.TB, spec encodeSpec) recording {
	t.Helper()
	ffmpeg := needTool(t, "ffmpeg")
	if spec.width == 0 {
		spec.width = 320
	}
	if spec.seconds == 0 {
		spec.seconds = 6
	}
	if spec.fps == 0 {
		spec.fps = 25
	}
	if spec.gop == 0 {
		spec.gop = spec.fps
	}
	if spec.toneFreq == 0 {
		spec.toneFreq = 440
	}
	out := filepath.Join(t.TempDir(), "src.ts")
	args := []string{"-v", "error", "-nostdin", "-f", "lavfi", "-i",
		fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", spec.width, spec.width*3/4, spec.fps)}
	if spec.audio {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", spec.toneFreq))
	}
	args = append(args, "-t", strconv.Itoa(spec.seconds), "-pix_fmt", "yuv420p")
	switch spec.codec {
	case ringstore.CodecH264:
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-g", strconv.Itoa(spec.gop),
			"-keyint_min", strconv.Itoa(spec.gop), "-sc_threshold", "0", "-bf", strconv.Itoa(spec.bframes))
		if spec.bframes > 0 {
			args = append(args, "-preset", "veryfast")
		}
	case ringstore.CodecH265:
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
			fmt.Sprintf("keyint=%d:min-keyint=%d:scenecut=0:bframes=%d:log-level=error", spec.gop, spec.gop, spec.bframes))
	default:
		t.Fatalf("encode: codec %v", spec.codec)
	}
	switch {
	case spec.audio && spec.opus:
		args = append(args, "-c:a", "libopus", "-b:a", "32k", "-ac", "1")
	case spec.audio:
		args = append(args, "-c:a", "aac", "-b:a", "64k", "-ac", "1")
	}
	args = append(args, "-f", "mpegts", out)
	if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := readTS(f, spec.codec)
	if err != nil {
		t.Fatalf("read %s: %v", out, err)
	}
	return rec
}

type tsFrame struct {
	ringstore.Frame
	dts int64 // 90 kHz, for store order
}

// readTS demuxes MPEG-TS into store frames.
func readTS(r io.Reader, vc ringstore.Codec) (recording, error) {
	tr := &mpegts.Reader{R: r}
	if err := tr.Initialize(); err != nil {
		return recording{}, err
	}
	var rec recording
	var frames []tsFrame
	var params paramSets
	toTime := func(ts int64) time.Time { return time.Unix(0, 0).Add(time.Duration(ts) * time.Second / 90000) }
	video := func(pts, dts int64, au [][]byte) error {
		for _, n := range au {
			params.classify(vc, n)
		}
		var key bool
		if vc == ringstore.CodecH264 {
			key = h264.IsRandomAccess(au)
		} else {
			key = h265.IsRandomAccess(au)
		}
		data, err := h264.AVCC(au).Marshal()
		if err != nil {
			return err
		}
		frames = append(frames, tsFrame{Frame: ringstore.Frame{Track: 0, Time: toTime(pts),
			DTSOffset: time.Duration(pts-dts) * time.Second / 90000, Key: key, Data: data}, dts: dts})
		return nil
	}
	for _, trk := range tr.Tracks() {
		switch c := trk.Codec.(type) {
		case *mpegts.CodecH264:
			tr.OnDataH264(trk, video)
		case *mpegts.CodecH265:
			tr.OnDataH265(trk, video)
		case *mpegts.CodecOpus:
			rec.tracks = append(rec.tracks, ringstore.Track{ID: 1, Codec: ringstore.CodecOpus,
				ClockRate: 48000, Channels: uint8(c.ChannelCount)})
			tr.OnDataOpus(trk, func(pts int64, packets [][]byte) error {
				for _, pkt := range packets {
					frames = append(frames, tsFrame{Frame: ringstore.Frame{Track: 1, Time: toTime(pts), Key: true,
						Data: bytes.Clone(pkt)}, dts: pts})
					pts += opusDuration(pkt) * 90000 / 48000
				}
				return nil
			})
		case *mpegts.CodecMPEG4Audio:
			asc, err := c.Config.Marshal()
			if err != nil {
				return recording{}, err
			}
			rate := c.Config.SampleRate
			rec.tracks = append(rec.tracks, ringstore.Track{ID: 1, Codec: ringstore.CodecAAC,
				ClockRate: uint32(rate), Channels: uint8(c.Config.ChannelCount), Config: [][]byte{asc}})
			tr.OnDataMPEG4Audio(trk, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					ts := pts + int64(i)*1024*90000/int64(rate)
					frames = append(frames, tsFrame{Frame: ringstore.Frame{Track: 1, Time: toTime(ts), Key: true,
						Data: bytes.Clone(au)}, dts: ts})
				}
				return nil
			})
		}
	}
	for {
		err := tr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return recording{}, err
		}
	}
	vt := ringstore.Track{ID: 0, Codec: vc, ClockRate: 90000}
	if vc == ringstore.CodecH265 {
		vt.Config = [][]byte{params.vps, params.sps, params.pps}
	} else {
		vt.Config = [][]byte{params.sps, params.pps}
	}
	rec.tracks = append([]ringstore.Track{vt}, rec.tracks...)
	// Store order: arrival order, which follows decoding time.
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].dts < frames[j].dts })
	// Time zero is the first picture (MPEG-TS starts at an offset).
	var zero time.Duration
	for _, f := range frames {
		if f.Track == 0 {
			zero = f.Time.Sub(time.Unix(0, 0))
			break
		}
	}
	for _, f := range frames {
		f.Time = f.Time.Add(-zero)
		if f.Time.Before(time.Unix(0, 0)) {
			continue // audio before the first picture
		}
		rec.frames = append(rec.frames, f.Frame)
	}
	return rec, nil
}

// probe is what ffprobe says of a file.
type probe struct {
	Streams []struct {
		Index        int    `json:"index"`
		CodecName    string `json:"codec_name"`
		CodecTag     string `json:"codec_tag_string"`
		NbReadFrames string `json:"nb_read_frames"`
		Duration     string `json:"duration"`
		Width        int    `json:"width"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTSTime     string `json:"pts_time"`
		DTSTime     string `json:"dts_time"`
		Flags       string `json:"flags"`
	} `json:"packets"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func runProbe(t testing.TB, file string) probe {
	t.Helper()
	ffprobe := needTool(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"stream=index,codec_name,codec_tag_string,nb_read_frames,duration,width:format=duration:packet=stream_index,pts_time,dts_time,flags",
		"-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return p
}

// decodeClean fails the test unless ffmpeg decodes the whole file without
// printing an error.
func decodeClean(t testing.TB, file string) {
	t.Helper()
	ffmpeg := needTool(t, "ffmpeg")
	out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("ffmpeg decode of %s: %v\n%s", file, err, out)
	}
}

func parseSeconds(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

// opusDuration is an Opus packet's length in 48 kHz samples (RFC 6716 3.1).
func opusDuration(pkt []byte) int64 {
	if len(pkt) == 0 {
		return 960
	}
	toc := pkt[0]
	config := toc >> 3
	var frame int64
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = []int64{480, 960, 1920, 2880}[config%4]
	case config < 16: // hybrid: 10, 20 ms
		frame = []int64{480, 960}[config%2]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []int64{120, 240, 480, 960}[config%4]
	}
	switch toc & 3 {
	case 0:
		return frame
	case 1, 2:
		return 2 * frame
	}
	if len(pkt) < 2 {
		return frame
	}
	return frame * int64(pkt[1]&0x3f)
}
