package camsim

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
)

// ntpToTime decodes a 64-bit NTP timestamp.
func ntpToTime(v uint64) time.Time {
	const ntpEpochOffset = 2208988800
	sec := int64(v>>32) - ntpEpochOffset
	frac := int64(v&0xffffffff) * 1e9 >> 32
	return time.Unix(sec, frac)
}

func TestStreams(t *testing.T) {
	tests := []struct {
		name      string
		cfg       PathConfig
		transport gortsplib.Transport
		frames    int // video frames to read: > 75 crosses a loop of the clip
	}{
		{"h264-tcp-loop", PathConfig{Video: H264}, gortsplib.TransportTCP, 90},
		{"h264-udp", PathConfig{Video: H264}, gortsplib.TransportUDP, 30},
		{"h265-tcp", PathConfig{Video: H265}, gortsplib.TransportTCP, 30},
		{"h265-udp-loop", PathConfig{Video: H265}, gortsplib.TransportUDP, 90},
		{"h264-aac-tcp", PathConfig{Video: H264, Audio: AAC}, gortsplib.TransportTCP, 30},
		{"h264-pcmu-udp", PathConfig{Video: H264, Audio: PCMU}, gortsplib.TransportUDP, 30},
		{"h265-aac-udp", PathConfig{Video: H265, Audio: AAC}, gortsplib.TransportUDP, 30},
		{"h265-pcmu-tcp", PathConfig{Video: H265, Audio: PCMU}, gortsplib.TransportTCP, 30},
	}
	t.Parallel()
	// One simulator serves every case on its own path; all readers play at
	// once, then each case is checked.
	paths := make(map[string]PathConfig)
	for _, tt := range tests {
		paths[tt.name] = tt.cfg
	}
	s := startSim(t, Options{}, paths)
	readers := make([]*testReader, len(tests))
	for i, tt := range tests {
		readers[i] = readPath(t, s, tt.name, readOpts{transport: tt.transport})
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := readers[i]
			v := r.waitFrames(t, 0, tt.frames, time.Duration(tt.frames)*framePeriod+3*time.Second)
			checkVideo(t, s, tt.cfg.Video, v)
			checkSenderReports(t, v, videoClock)
			if tt.transport == gortsplib.TransportTCP && v.framesAtSR != 0 {
				// Over TCP RTCP and RTP share the connection, in order.
				t.Errorf("first sender report came after %d frames, want before the first one ended", v.framesAtSR)
			}
			wantTracks := 1
			if tt.cfg.Audio != "" && tt.cfg.Audio != AudioNone {
				wantTracks = 2
			}
			if len(r.tracks) != wantTracks {
				t.Fatalf("%d tracks, want %d", len(r.tracks), wantTracks)
			}
			if wantTracks == 2 {
				checkAudio(t, tt.cfg.Audio, r.track(1))
			}
			st, err := s.Stats(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if st.Sessions != 1 || st.Playing != 1 {
				t.Errorf("stats sessions %d playing %d, want 1 1", st.Sessions, st.Playing)
			}
			if st.Frames < uint64(len(v.frames)) {
				t.Errorf("stats frames %d < %d received", st.Frames, len(v.frames))
			}
			if tt.frames > 75 && st.Loops == 0 {
				t.Errorf("read %d frames, stats say no loop completed", tt.frames)
			}
		})
	}
}

// checkVideo checks codec, in-band parameter sets, frame rate and continuous
// timestamps and sequence numbers.
func checkVideo(t *testing.T, s *Simulator, codec VideoCodec, v recvTrack) {
	t.Helper()
	clip := s.clips[codec][0]
	switch f := v.format.(type) {
	case *format.H264:
		if codec != H264 || !bytes.Equal(f.SPS, clip.params[0]) || !bytes.Equal(f.PPS, clip.params[1]) {
			t.Errorf("H264 format with SPS/PPS not the clip's (want %s)", codec)
		}
	case *format.H265:
		if codec != H265 || !bytes.Equal(f.VPS, clip.params[0]) || !bytes.Equal(f.SPS, clip.params[1]) {
			t.Errorf("H265 format with VPS/SPS not the clip's (want %s)", codec)
		}
	default:
		t.Fatalf("video format %T", v.format)
	}
	if v.decodeErrors != 0 || v.seqGaps != 0 {
		t.Errorf("decode errors %d, sequence gaps %d", v.decodeErrors, v.seqGaps)
	}
	keys := 0
	for i, fr := range v.frames {
		if i > 0 {
			if d := fr.rtpTime - v.frames[i-1].rtpTime; d != frameTicks {
				t.Fatalf("frame %d: RTP time step %d, want %d", i, d, frameTicks)
			}
		}
		if fr.key {
			keys++
			if !bytes.Equal(fr.au[0], clip.params[0]) {
				t.Errorf("frame %d: keyframe does not start with the in-band parameter sets", i)
			}
		}
	}
	if want := len(v.frames) / 25; keys < want {
		t.Errorf("%d keyframes in %d frames, want >= %d", keys, len(v.frames), want)
	}
	// The arrival rate over the whole read (at least 2 s), within 20 %.
	n := len(v.frames)
	if span := v.frames[n-1].at.Sub(v.frames[0].at); span >= 2*time.Second {
		if fps := float64(n-1) / span.Seconds(); fps < 25*0.8 || fps > 25*1.2 {
			t.Errorf("%d frames arrived over %v: %.1f fps, want 25", n, span, fps)
		}
	} else {
		t.Errorf("%d frames arrived over %v only", n, span)
	}
}

// checkSenderReports checks that a sender report came at once and maps RTP
// time to the wall clock the frames arrived on: frames arrive in real time,
// never before their capture time, mostly within 200 ms of it (the machine
// may be busy: the worst may be later).
func checkSenderReports(t *testing.T, v recvTrack, clock int) {
	t.Helper()
	if len(v.srs) == 0 {
		t.Fatal("no RTCP sender report")
	}
	sr := v.srs[0]
	wall := ntpToTime(sr.NTPTime)
	var late []time.Duration
	for _, fr := range v.frames {
		expect := wall.Add(time.Duration(int32(fr.rtpTime-sr.RTPTime)) * time.Second / time.Duration(clock))
		late = append(late, fr.at.Sub(expect))
	}
	checkLateness(t, late)
}

// checkLateness checks arrival delays: none early (beyond clock noise), the
// median under 200 ms, the worst under 2 s (scaled by timingSlack).
func checkLateness(t *testing.T, late []time.Duration) {
	t.Helper()
	sorted := slices.Clone(late)
	slices.Sort(sorted)
	if len(sorted) == 0 {
		t.Fatal("no frames")
	}
	lo, med, hi := sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1]
	if lo < -50*time.Millisecond || med > 200*time.Millisecond*timingSlack || hi > 2*time.Second*timingSlack {
		t.Errorf("frames arrive %v..%v (median %v) after their capture time", lo, hi, med)
	}
}

func checkAudio(t *testing.T, codec AudioCodec, a recvTrack) {
	t.Helper()
	step := uint32(0)
	switch f := a.format.(type) {
	case *format.MPEG4Audio:
		if codec != AAC || f.Config.SampleRate != 16000 || f.Config.ChannelCount != 1 {
			t.Errorf("AAC format %+v, want %s 16 kHz mono", f.Config, codec)
		}
		step = 1024
	case *format.G711:
		if codec != PCMU || !f.MULaw || f.SampleRate != 8000 {
			t.Errorf("G711 format %+v, want %s", f, codec)
		}
		step = pcmuPacket
	default:
		t.Fatalf("audio format %T", a.format)
	}
	if len(a.frames) < 10 {
		t.Fatalf("%d audio frames", len(a.frames))
	}
	for i := 1; i < len(a.frames); i++ {
		if d := a.frames[i].rtpTime - a.frames[i-1].rtpTime; d != step {
			t.Fatalf("audio frame %d: RTP step %d, want %d", i, d, step)
		}
	}
	if a.decodeErrors != 0 || a.seqGaps != 0 {
		t.Errorf("audio decode errors %d, sequence gaps %d", a.decodeErrors, a.seqGaps)
	}
	if len(a.srs) == 0 {
		t.Error("no audio sender report")
	}
}
