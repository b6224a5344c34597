package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

// needTool finds a command-line tool the test needs: missing under CI is a
// failure, elsewhere a skip that says what to install.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required (make test installs it): %v", name, err)
		}
		t.Skipf("%s not installed (make deps installs it)", name)
	}
	return p
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) get(path string, hdr ...string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func (c client) getJSON(path string, v any) {
	c.t.Helper()
	code, _, body := c.get(path)
	if code != 200 {
		c.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		c.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// TestApplianceRecordsAndServesTheAPI runs the appliance as nvrd run does:
// a simulated H.264+AAC and an H.265 camera recorded into a real store, the
// API polled through a real HTTP client, an export that ffprobe opens, a
// clean shutdown, and the footage still there after reopening.
func TestApplianceRecordsAndServesTheAPI(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	dir := t.TempDir()
	data := formatStore(t, 64<<20)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{
		"cam1": {Video: camsim.H264, Audio: camsim.AAC},
		"cam2": {Video: camsim.H265},
	})
	addr, stop := startApp(t, Options{
		DataDir: data, APITokens: map[string]string{"test-token": "test"}, Version: "test",
		Cameras: []recorder.Camera{
			{Name: "cam1", URL: "rtsp://" + sim.Addr() + "/cam1"},
			{Name: "cam2", URL: "rtsp://" + sim.Addr() + "/cam2"},
		},
	})
	c := client{t: t, base: "http://" + addr, token: "test-token"}

	// Both cameras recording, through the API.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var cams []api.Camera
		c.getJSON("/api/v1/cameras", &cams)
		rec := 0
		for _, cam := range cams {
			if cam.State == "recording" {
				rec++
			}
		}
		if rec == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cameras not recording after 20s: %+v", cams)
		}
		time.Sleep(200 * time.Millisecond)
	}
	start := time.Now()
	time.Sleep(6 * time.Second)

	var st api.Status
	c.getJSON("/api/v1/status", &st)
	if !st.Healthy || st.Cameras.Recording != 2 || st.Storage.CapacityBytes != 64<<20 {
		t.Errorf("status %+v", st)
	}
	var cam1 api.Camera
	c.getJSON("/api/v1/cameras/cam1", &cam1)
	if cam1.Codec != "H264" || cam1.Audio != "AAC" || cam1.FramesRecorded == 0 || cam1.Width == 0 {
		t.Errorf("cam1 %+v", cam1)
	}
	var recs api.Recordings
	from := start.Add(-30 * time.Second).UTC().Format(time.RFC3339)
	c.getJSON("/api/v1/recordings?camera=cam2&from="+from, &recs)
	if len(recs.Spans) == 0 {
		t.Errorf("no spans for cam2: %+v", recs)
	}
	if code, _, body := c.get("/healthz"); code != 200 {
		t.Errorf("healthz %d %s", code, body)
	}
	code, _, metrics := c.get("/metrics")
	if code != 200 || !bytes.Contains(metrics, []byte(`nvr_camera_recording{camera="cam1",state="recording"} 1`)) ||
		!bytes.Contains(metrics, []byte("nvr_store_commits_total")) {
		t.Errorf("metrics %d lack camera/store series:\n%.2000s", code, metrics)
	}

	// Export through the API: ffprobe opens it; a Range request returns the
	// same bytes as that slice of the whole clip.
	// An absolute range, so that both requests name the same clip.
	rng := "camera=cam1&from=" + from + "&to=" + time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	code, hdr, clipBytes := c.get("/api/v1/export?" + rng)
	if code != 200 || hdr.Get("Content-Type") != "video/mp4" {
		t.Fatalf("export: %d %s %.200s", code, hdr, clipBytes)
	}
	clipPath := filepath.Join(dir, "cam1.mp4")
	if err := os.WriteFile(clipPath, clipBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "stream=codec_name,nb_frames", "-of", "csv=p=0", clipPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264") || !strings.Contains(string(out), "aac") {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	code, _, part := c.get("/api/v1/export?"+rng, "Range", "bytes=1000-4999", "If-Range", hdr.Get("ETag"))
	if code != 206 || !bytes.Equal(part, clipBytes[1000:5000]) {
		t.Errorf("range export: %d, %d bytes, equal=%v", code, len(part), bytes.Equal(part, clipBytes[1000:5000]))
	}

	stop()

	// Reopen: the footage is there, and the store is consistent.
	s, err := ringstore.Open(context.Background(), data, ringstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Frames("cam1", start.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		n++
	}
	if n < 100 {
		t.Errorf("after reopen, only %d frames of cam1", n)
	}
	rep, err := s.Check(context.Background(), nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Errorf("fsck after shutdown: %v %v", err, rep.Problems)
	}
}
