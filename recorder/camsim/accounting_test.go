package camsim

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// avccSize counts an access unit the way PathStats.VideoBytes does.
func avccSize(au [][]byte) int {
	n := 0
	for _, nalu := range au {
		n += len(nalu) + avccOverhead
	}
	return n
}

// TestBitrateOverRTSP measures the video bitrate a client receives: within
// 10 % of the target, both as access unit bytes and as RTP payload bytes.
func TestBitrateOverRTSP(t *testing.T) {
	t.Parallel()
	targets := map[string]int64{"h264-4M": 4_000_000, "h265-2M": 2_000_000, "h264-own": 0}
	s := startSim(t, Options{}, map[string]PathConfig{
		"h264-4M": {Video: H264, Bitrate: 4_000_000}, "h265-2M": {Video: H265, Bitrate: 2_000_000}, "h264-own": {},
	})
	readers := map[string]*testReader{}
	for name := range targets {
		readers[name] = readPath(t, s, name, readOpts{transport: gortsplib.TransportTCP})
	}
	const frames = 51 // two seconds: 50 frame intervals
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			v := readers[name].waitFrames(t, 0, frames, 5*time.Second)
			if target == 0 {
				target = s.clips[H264][0].naturalBitrate()
			}
			// Frames 1..frames-1 cover frames-1 intervals of 40 ms.
			bytes := 0
			for _, fr := range v.frames[1:frames] {
				bytes += avccSize(fr.au)
			}
			secs := float64(frames-1) / clipFrameRate
			got := float64(bytes) * 8 / secs
			if d := got/float64(target) - 1; d < -0.10 || d > 0.10 {
				t.Errorf("received %.0f bit/s of access units, target %d (%+.1f%%)", got, target, 100*d)
			}
			st, _ := s.Stats(name)
			if d := float64(st.Bitrate)/float64(target) - 1; d < -0.01 || d > 0.01 {
				t.Errorf("stats bitrate %d, target %d", st.Bitrate, target)
			}
			if wire := float64(v.payloadBytes) * 8 / (float64(len(v.frames)) / clipFrameRate); wire < 0.9*float64(target) || wire > 1.1*float64(target) {
				t.Errorf("RTP payload rate %.0f bit/s, target %d", wire, target)
			}
		})
	}
}

// TestSentFramesMatchReceived checks the accounting tests rely on: the frames
// a path reports sent are the frames a reader received, and the counters
// advance by what was sent between two snapshots.
func TestSentFramesMatchReceived(t *testing.T) {
	t.Parallel()
	s := startSim(t, Options{}, map[string]PathConfig{"cam": {Audio: AAC}})
	r := readPath(t, s, "cam", readOpts{transport: gortsplib.TransportTCP})
	r.waitFrames(t, 0, 5, 3*time.Second)
	s1, _ := s.Stats("cam")
	n1 := len(r.track(0).frames)
	time.Sleep(time.Second)
	s2, _ := s.Stats("cam")
	v := r.track(0)
	n2 := len(v.frames)
	if d := int(s2.Frames-s1.Frames) - (n2 - n1); d < -2 || d > 2 {
		t.Errorf("stats: %d frames sent between snapshots, reader got %d", s2.Frames-s1.Frames, n2-n1)
	}
	if s2.Keyframes < 1 || s2.VideoBytes <= s1.VideoBytes || s2.Bytes <= s1.Bytes || s2.AudioFrames <= s1.AudioFrames {
		t.Errorf("counters did not advance: %+v -> %+v", s1, s2)
	}
	sent, err := s.SentFrames("cam", time.Time{}, s2.At)
	if err != nil {
		t.Fatal(err)
	}
	byRTP := make(map[uint32]SentFrame, len(sent))
	for _, f := range sent {
		byRTP[f.RTPTime] = f
	}
	var late []time.Duration
	for i, fr := range v.frames[:n2] {
		f, ok := byRTP[fr.rtpTime]
		if !ok {
			t.Fatalf("received frame %d (RTP %d) not in SentFrames", i, fr.rtpTime)
		}
		if f.Key != fr.key || f.Size != avccSize(fr.au) {
			t.Errorf("frame %d: sent key %v size %d, received key %v size %d", i, f.Key, f.Size, fr.key, avccSize(fr.au))
		}
		late = append(late, fr.at.Sub(f.Time))
	}
	checkLateness(t, late)
	first := byRTP[v.frames[0].rtpTime].Time
	last := byRTP[v.frames[n2-1].rtpTime].Time
	between, _ := s.SentFrames("cam", first, last.Add(time.Nanosecond))
	if len(between) != n2 {
		t.Errorf("SentFrames between the first and last received: %d, received %d", len(between), n2)
	}
	if _, err := s.SentFrames("nope", first, last); err == nil {
		t.Error("SentFrames of an unknown path succeeded")
	}
}

func TestFrameRing(t *testing.T) {
	base := time.Unix(1000, 0)
	r := frameRing{limit: 3}
	for i := range 7 {
		r.add(SentFrame{Time: base.Add(time.Duration(i) * time.Second), RTPTime: uint32(i)})
		got := r.between(time.Time{}, base.Add(time.Hour))
		if want := min(i+1, 3); len(got) != want || got[len(got)-1].RTPTime != uint32(i) || got[0].RTPTime != uint32(i+1-want) {
			t.Fatalf("after %d adds the ring keeps %+v, want the last %d oldest first", i+1, got, want)
		}
	}
	got := r.between(time.Time{}, base.Add(time.Hour))
	if len(got) != 3 || got[0].RTPTime != 4 || got[2].RTPTime != 6 {
		t.Errorf("ring keeps %+v, want the last 3 oldest first", got)
	}
	if got := r.between(base.Add(5*time.Second), base.Add(6*time.Second)); len(got) != 1 || got[0].RTPTime != 5 {
		t.Errorf("between [5s,6s): %+v", got)
	}
	var none frameRing
	none.add(SentFrame{})
	if len(none.between(time.Time{}, base)) != 0 {
		t.Error("empty ring returned frames")
	}
}

// TestTwoReaders checks that readers of one path get the same stream and
// that the counters count it once.
func TestTwoReaders(t *testing.T) {
	t.Parallel()
	s := startSim(t, Options{}, map[string]PathConfig{"cam": {}})
	a := readPath(t, s, "cam", readOpts{transport: gortsplib.TransportTCP})
	b := readPath(t, s, "cam", readOpts{transport: gortsplib.TransportUDP})
	b.waitFrames(t, 0, 5, 3*time.Second)
	st := waitStats(t, s, "cam", 2*time.Second, func(st PathStats) bool { return st.Playing == 2 })
	if st.Sessions != 2 {
		t.Errorf("sessions %d, want 2", st.Sessions)
	}
	s1 := st
	time.Sleep(500 * time.Millisecond)
	va, vb := a.track(0), b.track(0)
	s2, _ := s.Stats("cam")
	if d := int(s2.Frames-s1.Frames) - 13; d < -3 || d > 3 {
		t.Errorf("%d frames counted in 0.5 s with two readers, want about 12.5 (counted once)", s2.Frames-s1.Frames)
	}
	inA := make(map[uint32]bool)
	for _, f := range va.frames {
		inA[f.rtpTime] = true
	}
	common := 0
	for _, f := range vb.frames {
		if inA[f.rtpTime] {
			common++
		}
	}
	if common < len(vb.frames)-2 {
		t.Errorf("readers share %d of %d frames", common, len(vb.frames))
	}
	a.c.Close()
	waitStats(t, s, "cam", 2*time.Second, func(st PathStats) bool { return st.Playing == 1 })
	n := len(b.track(0).frames)
	b.waitFrames(t, 0, n+5, 2*time.Second)
}
