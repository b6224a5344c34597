package camsim

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// waitStats polls a path's stats until ok or the timeout ends.
func waitStats(t *testing.T, s *Simulator, path string, timeout time.Duration, ok func(PathStats) bool) PathStats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.Stats(path)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats of %s after %v: %+v", path, timeout, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustFault(t *testing.T, s *Simulator, path string, f Fault) {
	t.Helper()
	if err := s.Fault(path, f); err != nil {
		t.Fatal(err)
	}
}

// waitDone waits for the client to end by itself.
func waitDone(t *testing.T, r *testReader, timeout time.Duration) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- r.c.Wait() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(timeout):
		r.c.Close()
		<-errc
		t.Fatalf("client still connected after %v", timeout)
		return nil
	}
}

var faultCreds = PathConfig{User: "admin", Pass: "s3cret"}

var tcpRead = readOpts{transport: gortsplib.TransportTCP}

// TestFaults runs one scenario per fault, each on its own path of one
// simulator, all at once (they mostly wait on the clock).
func TestFaults(t *testing.T) {
	t.Parallel()
	scenarios := []struct {
		path string
		cfg  PathConfig
		run  func(t *testing.T, s *Simulator, path string)
	}{
		{"drop-tcp", PathConfig{}, testDrop(gortsplib.TransportTCP)},
		{"drop-udp", PathConfig{}, testDrop(gortsplib.TransportUDP)},
		{"stall", PathConfig{Audio: AAC}, testStall},
		{"jump-fwd", PathConfig{Audio: PCMU}, testJump(time.Hour)},
		{"jump-back", PathConfig{Video: H265}, testJump(-30 * time.Second)},
		{"jump-ntp", PathConfig{}, testJumpNTP},
		{"params-h264", PathConfig{}, testParams},
		{"params-h265", PathConfig{Video: H265}, testParams},
		{"malformed-h264", PathConfig{}, testMalformed},
		{"malformed-h265", PathConfig{Video: H265}, testMalformed},
		{"refuse", faultCreds, testRefuseAuth},
		{"refuse-open", PathConfig{}, testRefuseAuth},
		{"never", PathConfig{}, testNeverAnswer},
		{"never-for", PathConfig{}, testNeverAnswerFor},
		{"never-drop", PathConfig{}, testNeverAnswerDrop},
		{"restart", PathConfig{Audio: AAC}, testRestart},
	}
	paths := make(map[string]PathConfig)
	for _, sc := range scenarios {
		paths[sc.path] = sc.cfg
	}
	s := startSim(t, Options{SenderReportPeriod: 200 * time.Millisecond}, paths)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(sc.path, func(t *testing.T) { sc.run(t, s, sc.path) })
		}()
	}
	wg.Wait()
}

func testDrop(transport gortsplib.Transport) func(*testing.T, *Simulator, string) {
	return func(t *testing.T, s *Simulator, path string) {
		r := readPath(t, s, path, readOpts{transport: transport})
		r.waitFrames(t, 0, 3, 3*time.Second)
		mustFault(t, s, path, Fault{Kind: FaultDrop})
		if err := waitDone(t, r, 3*time.Second); err == nil {
			t.Error("client ended without error")
		}
		st := waitStats(t, s, path, 2*time.Second, func(st PathStats) bool { return st.Playing == 0 })
		if st.Dropped == 0 {
			t.Errorf("stats: dropped 0")
		}
		r2 := readPath(t, s, path, readOpts{transport: transport})
		r2.waitFrames(t, 0, 3, 3*time.Second)
	}
}

func testStall(t *testing.T, s *Simulator, path string) {
	r := readPath(t, s, path, tcpRead)
	before := r.waitFrames(t, 0, 5, 3*time.Second)
	srBefore := len(before.srs) + len(r.track(1).srs)
	mustFault(t, s, path, Fault{Kind: FaultStall, Duration: time.Second})
	stallStart := time.Now()
	time.Sleep(800 * time.Millisecond)
	during := r.track(0)
	if got := len(during.srs) + len(r.track(1).srs); got > srBefore+2 {
		t.Errorf("%d sender reports during the stall", got-srBefore)
	}
	if len(during.frames) > len(before.frames)+2 {
		t.Errorf("%d frames during the stall", len(during.frames)-len(before.frames))
	}
	v := r.waitFrames(t, 0, len(during.frames)+10, 3*time.Second)
	gapAt, gap := -1, time.Duration(0) // the longest gap in arrivals
	for i := 1; i < len(v.frames); i++ {
		if d := v.frames[i].at.Sub(v.frames[i-1].at); d > gap {
			gapAt, gap = i, d
		}
	}
	if gap < 700*time.Millisecond {
		t.Fatalf("no gap in frame arrivals (longest %v)", gap)
	}
	step := time.Duration(v.frames[gapAt].rtpTime-v.frames[gapAt-1].rtpTime) * time.Second / videoClock
	if d := step - gap; d < -400*time.Millisecond*timingSlack || d > 400*time.Millisecond*timingSlack {
		t.Errorf("stall of %v arrival gap has an RTP step of %v", gap, step)
	}
	if gap < 900*time.Millisecond || time.Since(stallStart) < time.Second {
		t.Errorf("stall gap %v, want about 1s", gap)
	}
}

func testJump(offset time.Duration) func(*testing.T, *Simulator, string) {
	return func(t *testing.T, s *Simulator, path string) {
		r := readPath(t, s, path, tcpRead)
		n := len(r.waitFrames(t, 0, 5, 3*time.Second).frames)
		mustFault(t, s, path, Fault{Kind: FaultJump, Offset: offset})
		v := r.waitFrames(t, 0, n+10, 3*time.Second)
		want := uint32(frameTicks) + ticks(offset, videoClock)
		jumps := 0
		for i := 1; i < len(v.frames); i++ {
			switch d := v.frames[i].rtpTime - v.frames[i-1].rtpTime; d {
			case frameTicks:
			case want:
				jumps++
			default:
				t.Fatalf("frame %d: RTP step %d, want %d or the jump %d", i, d, frameTicks, want)
			}
		}
		if jumps != 1 {
			t.Errorf("%d jumps, want 1", jumps)
		}
	}
}

func testJumpNTP(t *testing.T, s *Simulator, path string) {
	r := readPath(t, s, path, tcpRead)
	r.waitFrames(t, 0, 3, 3*time.Second)
	mustFault(t, s, path, Fault{Kind: FaultJumpNTP, Offset: time.Hour})
	at := time.Now()
	time.Sleep(500 * time.Millisecond)
	v := r.track(0)
	last := v.srs[len(v.srs)-1]
	if d := ntpToTime(last.NTPTime).Sub(at.Add(time.Hour)); d < -100*time.Millisecond || d > time.Second*timingSlack {
		t.Errorf("sender report after jump-ntp +1h: %v off", d)
	}
	for i := 1; i < len(v.frames); i++ {
		if d := v.frames[i].rtpTime - v.frames[i-1].rtpTime; d != frameTicks {
			t.Fatalf("RTP step %d after jump-ntp", d)
		}
	}
}

func testParams(t *testing.T, s *Simulator, path string) {
	r := readPath(t, s, path, tcpRead)
	n := len(r.waitFrames(t, 0, 3, 3*time.Second).frames)
	p := s.lookup(path)
	main, alt := p.loops[0].clip, p.loops[1].clip
	mustFault(t, s, path, Fault{Kind: FaultParams})
	v := r.waitFrames(t, 0, n+5, 3*time.Second)
	switchAt := -1
	for i := n; i < len(v.frames) && switchAt < 0; i++ {
		au := v.frames[i].au
		if len(au) >= len(alt.params) && bytes.Equal(bytes.Join(au[:len(alt.params)], nil), bytes.Join(alt.params, nil)) {
			switchAt = i
		}
	}
	if switchAt < 0 || !v.frames[switchAt].key {
		t.Fatalf("no keyframe with the new parameter sets after the switch (at %d)", switchAt)
	}
	for i := 1; i < len(v.frames); i++ {
		if d := v.frames[i].rtpTime - v.frames[i-1].rtpTime; d != frameTicks {
			t.Fatalf("RTP step %d at the switch", d)
		}
	}
	st, _ := s.Stats(path)
	if st.ParamChanges != 1 || st.Clip != alt.name {
		t.Errorf("stats param changes %d clip %s, want 1 %s", st.ParamChanges, st.Clip, alt.name)
	}
	mustFault(t, s, path, Fault{Kind: FaultParams})
	m := len(r.track(0).frames)
	v = r.waitFrames(t, 0, m+3, 3*time.Second)
	back := false
	for _, fr := range v.frames[m:] {
		back = back || (fr.key && bytes.Equal(fr.au[0], main.params[0]))
	}
	if !back {
		t.Error("second params fault did not switch back")
	}
}

func testMalformed(t *testing.T, s *Simulator, path string) {
	r := readPath(t, s, path, tcpRead)
	n := len(r.waitFrames(t, 0, 3, 3*time.Second).frames)
	mustFault(t, s, path, Fault{Kind: FaultMalformed, Count: 12})
	waitStats(t, s, path, 2*time.Second, func(st PathStats) bool { return st.Malformed == 12 })
	v := r.waitFrames(t, 0, n+30, 4*time.Second)
	if v.decodeErrors == 0 {
		t.Error("malformed packets caused no decode error")
	}
	keys := 0
	for _, fr := range v.frames[n:] {
		if fr.key {
			keys++
		}
	}
	if keys == 0 {
		t.Error("no keyframe decoded after the malformed packets")
	}
}

func testRefuseAuth(t *testing.T, s *Simulator, path string) {
	o := tcpRead
	if s.lookup(path).cfg.User != "" {
		o.user, o.pass = faultCreds.User, faultCreds.Pass
	}
	mustFault(t, s, path, Fault{Kind: FaultRefuseAuth})
	if r, err := dialReader(t, s, path, o); err == nil {
		r.c.Close()
		t.Fatal("first connection after refuse-auth was accepted")
	} else if !strings.Contains(err.Error(), "401") {
		t.Errorf("refused with %v, want a 401", err)
	}
	r := readPath(t, s, path, o)
	r.waitFrames(t, 0, 3, 3*time.Second)
	if st, _ := s.Stats(path); st.AuthRefused != 1 {
		t.Errorf("stats auth refused %d, want 1", st.AuthRefused)
	}
}

func testNeverAnswer(t *testing.T, s *Simulator, path string) {
	old := readPath(t, s, path, tcpRead)
	mustFault(t, s, path, Fault{Kind: FaultNeverAnswer})
	start := time.Now()
	_, err := dialReader(t, s, path, readOpts{transport: gortsplib.TransportTCP, timeout: 700 * time.Millisecond})
	if err == nil || time.Since(start) < 600*time.Millisecond {
		t.Fatalf("dial to a never-answer path: %v after %v", err, time.Since(start))
	}
	if st, _ := s.Stats(path); st.Held == 0 {
		t.Error("stats: held 0")
	}
	n := len(old.track(0).frames)
	old.waitFrames(t, 0, n+5, 2*time.Second) // the session from before plays on
	mustFault(t, s, path, Fault{Kind: FaultClear})
	readPath(t, s, path, tcpRead).waitFrames(t, 0, 3, 3*time.Second)
}

func testNeverAnswerFor(t *testing.T, s *Simulator, path string) {
	mustFault(t, s, path, Fault{Kind: FaultNeverAnswer, Duration: 500 * time.Millisecond})
	start := time.Now()
	r := readPath(t, s, path, tcpRead)
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("answered after %v, want after the 500ms never-answer", d)
	}
	r.waitFrames(t, 0, 3, 3*time.Second)
}

func testNeverAnswerDrop(t *testing.T, s *Simulator, path string) {
	mustFault(t, s, path, Fault{Kind: FaultNeverAnswer})
	errc := make(chan error, 1)
	go func() {
		r, err := dialReader(t, s, path, readOpts{transport: gortsplib.TransportTCP, timeout: 5 * time.Second})
		if err == nil {
			r.c.Close()
		}
		errc <- err
	}()
	waitStats(t, s, path, 2*time.Second, func(st PathStats) bool { return st.Held == 1 })
	mustFault(t, s, path, Fault{Kind: FaultDrop})
	select {
	case err := <-errc:
		if err == nil {
			t.Error("held connection answered after drop")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("held connection not closed by drop")
	}
}

func TestFaultErrors(t *testing.T) {
	s, err := New(Options{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddPath("cam", PathConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		f    Fault
		want error
	}{
		{"nope", Fault{Kind: FaultDrop}, ErrNoPath},
		{"cam", Fault{Kind: "explode"}, ErrBadConfig},
		{"cam", Fault{Kind: FaultJump}, ErrBadConfig},
		{"cam", Fault{Kind: FaultStall, Duration: -time.Second}, ErrBadConfig},
		{"cam", Fault{Kind: FaultMalformed, Count: 1 << 40}, ErrBadConfig},
		{"cam", Fault{Kind: FaultStall, Duration: time.Second}, nil},
		{"cam", Fault{Kind: FaultDrop}, nil}, // not started: nothing to drop
	} {
		if err := s.Fault(tt.path, tt.f); !errors.Is(err, tt.want) {
			t.Errorf("Fault(%s, %+v) = %v, want %v", tt.path, tt.f, err, tt.want)
		}
	}
}

func testRestart(t *testing.T, s *Simulator, path string) {
	r := readPath(t, s, path, tcpRead)
	old := r.waitFrames(t, 0, 5, 3*time.Second)
	mustFault(t, s, path, Fault{Kind: FaultJump, Offset: time.Hour}) // cleared by the restart
	mustFault(t, s, path, Fault{Kind: FaultRestart, Duration: 600 * time.Millisecond})
	start := time.Now()
	if err := waitDone(t, r, 3*time.Second); err == nil {
		t.Error("reader ended without error at the restart")
	}
	if _, err := dialReader(t, s, path, tcpRead); err == nil {
		t.Error("connected while the camera restarts")
	}
	var r2 *testReader
	for r2 == nil {
		var err error
		if r2, err = dialReader(t, s, path, tcpRead); err != nil {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("camera not back 3 s after a 600 ms restart: %v", err)
			}
			r2 = nil
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Cleanup(r2.c.Close)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("camera back after %v, want after 600 ms", d)
	}
	if _, err := r2.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	v := r2.waitFrames(t, 0, 5, 3*time.Second)
	if v.ssrc == old.ssrc {
		t.Errorf("same SSRC %d after the restart", v.ssrc)
	}
	for i := 1; i < len(v.frames); i++ {
		if d := v.frames[i].rtpTime - v.frames[i-1].rtpTime; d != frameTicks {
			t.Fatalf("RTP step %d after the restart (jump not cleared?)", d)
		}
	}
	st, _ := s.Stats(path)
	if st.Restarts != 1 || st.Sessions != 2 || st.Playing != 1 {
		t.Errorf("stats restarts %d sessions %d playing %d, want 1 2 1", st.Restarts, st.Sessions, st.Playing)
	}
}
