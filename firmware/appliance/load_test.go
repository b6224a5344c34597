package appliance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

// loadDuration is how long TestAPILoadWhileRecording polls; NVR_LOAD_DURATION
// overrides the 60 s the acceptance criteria ask for (e.g. 10s while
// iterating).
func loadDuration(t *testing.T) time.Duration {
	if s := os.Getenv("NVR_LOAD_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("NVR_LOAD_DURATION: %v", err)
		}
		return d
	}
	return 60 * time.Second
}

// TestAPILoadWhileRecording records 20 simulated cameras while 200 VMS
// clients poll /api/v1/status and 10 export the last 30 s as MP4, for 60 s:
// no camera loses a frame, and the status latency percentiles are reported.
func TestAPILoadWhileRecording(t *testing.T) {
	const cameras, pollers, exporters = 20, 200, 10
	dur := loadDuration(t)
	data := formatStore(t, 512<<20)
	paths := map[string]camsim.PathConfig{}
	for i := 0; i < cameras; i++ {
		paths[fmt.Sprintf("cam%02d", i)] = camsim.PathConfig{Video: camsim.H264, Bitrate: 2_000_000}
	}
	sim := startSim(t, camsim.Options{FrameHistory: int(dur/(40*time.Millisecond)) + 2000}, paths)
	var cams []recorder.Camera
	for i := 0; i < cameras; i++ {
		name := fmt.Sprintf("cam%02d", i)
		cams = append(cams, recorder.Camera{Name: name, URL: "rtsp://" + sim.Addr() + "/" + name})
	}
	addr, stop := startApp(t, Options{DataDir: data, Cameras: cams, APITokens: map[string]string{"tok": "load"}})
	base := "http://" + addr
	c := client{t: t, base: base, token: "tok"}
	waitUntil(t, "all cameras recording", 60*time.Second, func() bool {
		var st struct {
			Cameras struct{ Recording int } `json:"cameras"`
		}
		c.getJSON("/api/v1/status", &st)
		return st.Cameras.Recording == cameras
	})
	time.Sleep(3 * time.Second)
	start := time.Now()

	tr := &http.Transport{MaxIdleConnsPerHost: pollers + exporters}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	get := func(path string) (int, int64, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n, err
	}
	var (
		mu                sync.Mutex
		lat               []time.Duration
		polls, exports    atomic.Int64
		exportBytes, errs atomic.Int64
		firstErr          atomic.Value
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	stopAt := start.Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < pollers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stopAt) {
				t0 := time.Now()
				code, _, err := get("/api/v1/status")
				if err == nil && code != 200 {
					err = fmt.Errorf("status: HTTP %d", code)
				}
				if err != nil {
					fail(err)
					continue
				}
				mine = append(mine, time.Since(t0))
				polls.Add(1)
				time.Sleep(100 * time.Millisecond) // a VMS polls, it does not spin
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	for i := 0; i < exporters; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for time.Now().Before(stopAt) {
				cam := fmt.Sprintf("cam%02d", (i*7+int(exports.Load()))%cameras)
				code, n, err := get("/api/v1/export?camera=" + cam + "&from=-30s&to=now")
				if err == nil && code != 200 {
					err = fmt.Errorf("export %s: HTTP %d", cam, code)
				}
				if err != nil {
					fail(err)
					continue
				}
				exports.Add(1)
				exportBytes.Add(n)
			}
		}(i)
	}
	wg.Wait()
	end := time.Now()
	time.Sleep(2 * time.Second)
	stop()

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	elapsed := end.Sub(start)
	t.Logf("%d cameras recording; %s of load: %d status polls (%.0f/s) p50 %v p99 %v max %v; %d exports (%.1f MB/s); %d errors",
		cameras, elapsed.Round(time.Second), polls.Load(), float64(polls.Load())/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond),
		exports.Load(), float64(exportBytes.Load())/elapsed.Seconds()/1e6, errs.Load())
	if errs.Load() > 0 {
		t.Errorf("%d requests failed, first: %v", errs.Load(), firstErr.Load())
	}
	if exports.Load() < exporters {
		t.Errorf("only %d exports completed", exports.Load())
	}

	// No camera lost a frame over the load window.
	st, err := ringstore.Open(context.Background(), data, ringstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &rig{t: t, sim: sim, data: data}
	totalSent, totalKept := 0, 0
	for _, cam := range cams {
		sent, kept := r.framesKeptIn(st, cam.Name, start, end)
		totalSent += sent
		totalKept += kept
		if sent == 0 || kept != sent {
			t.Errorf("%s: sent %d frames, kept %d", cam.Name, sent, kept)
		}
	}
	t.Logf("frames sent %d, kept %d", totalSent, totalKept)
}
