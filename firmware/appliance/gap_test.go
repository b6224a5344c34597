package appliance

import (
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// TestDeadCameraShowsOngoingGap: a camera that stops and does not come back
// has no gap in the store (gaps are recorded when footage resumes); the API
// still shows one, ongoing, from its last footage to now, with its cause.
func TestDeadCameraShowsOngoingGap(t *testing.T) {
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"cam": {Video: camsim.H264}})
	addr, _ := startApp(t, Options{
		DataDir: formatStore(t, 32<<20), APITokens: map[string]string{"tok": "test"},
		CommitInterval: 200 * time.Millisecond,
		Cameras:        []recorder.Camera{{Name: "cam", URL: "rtsp://" + sim.Addr() + "/cam"}},
	})
	c := client{t: t, base: "http://" + addr, token: "tok"}
	waitState := func(want func(string) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var cam api.Camera
			c.getJSON("/api/v1/cameras/cam", &cam)
			if want(cam.State) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("camera not %s after 20 s: %+v", what, cam)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitState(func(s string) bool { return s == "recording" }, "recording")
	time.Sleep(3 * time.Second)
	var recs api.Recordings
	c.getJSON("/api/v1/recordings?camera=cam&from=-1m", &recs)
	for _, g := range recs.Gaps {
		if g.Ongoing {
			t.Fatalf("recording camera has an ongoing gap: %+v", recs)
		}
	}
	died := time.Now()
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	waitState(func(s string) bool { return s != "recording" }, "down")
	time.Sleep(3 * time.Second)
	c.getJSON("/api/v1/recordings?camera=cam&from=-1m", &recs)
	// The search starts before the first footage: a leading gap, the
	// span, and the ongoing gap.
	if len(recs.Spans) != 1 || len(recs.Gaps) != 2 || recs.Gaps[0].Ongoing {
		t.Fatalf("dead camera: %+v, want its one span and the ongoing gap after it", recs)
	}
	g, s := recs.Gaps[1], recs.Spans[0]
	if !g.Ongoing || g.Cause != "camera offline" || g.Start.Before(s.End) || g.Start.After(died.Add(time.Second)) ||
		time.Since(g.End) > 2*time.Second {
		t.Fatalf("gap %+v after span %+v (camera died at %v): want an ongoing camera-offline gap from the span's end to now", g, s, died)
	}
}
