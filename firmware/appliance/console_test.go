package appliance

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// term drives the appliance console through a pseudo-terminal, as a person
// at the serial port would.
type term struct {
	t   *testing.T
	pty io.Writer
	mu  sync.Mutex
	out bytes.Buffer
	pos int
}

func (tm *term) typeLine(s string) {
	tm.t.Helper()
	if _, err := tm.pty.Write([]byte(s + "\r")); err != nil {
		tm.t.Fatalf("type: %v", err)
	}
}

// expect waits for want after what was already consumed and returns the
// output before it.
func (tm *term) expect(want string, within time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(within)
	for {
		tm.mu.Lock()
		rest := tm.out.String()[tm.pos:]
		if i := strings.Index(rest, want); i >= 0 {
			tm.pos += i + len(want)
			tm.mu.Unlock()
			return rest[:i]
		}
		tm.mu.Unlock()
		if time.Now().After(deadline) {
			tm.t.Fatalf("timed out waiting for %q; output since the last match:\n%s", want, rest)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runAppliance starts Run with the console on a fresh pty and returns the
// terminal, the API address and a stop function that waits for Run.
func runAppliance(t *testing.T, opts Options) (*term, string, func()) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	tm := &term{t: t, pty: ptmx}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	opts.Console = tty
	addr, stopApp := startApp(t, opts)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		stopApp()
		tty.Close()
		ptmx.Close()
		<-readDone
	}
	t.Cleanup(stop)
	return tm, addr, stop
}

// TestConsoleConfiguresARecordingCamera is the integrator's first visit: log
// in on the console (first-run password), add a camera pointing at the
// simulator (tested before saving, password asked with echo off), see it
// recording in "show status", change its retention, create an API token the
// VMS then uses; after a restart the configuration is still there and the
// camera records again without anyone touching it.
func TestConsoleConfiguresARecordingCamera(t *testing.T) {
	data := formatStore(t, 32<<20)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"lobby": {Video: camsim.H264, User: "view", Pass: "cam-secret-1"}})
	opts := Options{DataDir: data, ConfigPath: filepath.Join(t.TempDir(), "config.db"), Version: "test"}
	tm, apiAddr, stop := runAppliance(t, opts)

	prompt := consoleLogin(t, tm)

	tm.typeLine("cameras add lobby rtsp://" + sim.Addr() + "/lobby --user view --ask-password")
	tm.expect("Camera password: ", 5*time.Second)
	tm.typeLine("cam-secret-1")
	out := tm.expect(prompt, 30*time.Second)
	for _, want := range []string{"camera answers: H264 640x360", "camera lobby added"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cameras add printed %q, want %q", out, want)
		}
	}
	if strings.Contains(out, "cam-secret-1") {
		t.Fatalf("the camera password was printed back: %q", out)
	}

	// Recording starts live, without a restart.
	deadline := time.Now().Add(20 * time.Second)
	for {
		tm.typeLine("show status")
		out = tm.expect(prompt, 10*time.Second)
		if strings.Contains(out, "cameras: 1 recording") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lobby not recording in show status: %q", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	tm.typeLine("storage retention lobby 30m")
	if out := tm.expect(prompt, 10*time.Second); !strings.Contains(out, "retention of lobby set to 30m") {
		t.Errorf("retention: %q", out)
	}
	tm.typeLine("frobnicate the cameras")
	if out := tm.expect(prompt, 10*time.Second); strings.Count(out, "error:") != 1 {
		t.Errorf("garbled line: want one error line, got %q", out)
	}

	tm.typeLine("tokens create vms viewer")
	out = tm.expect(prompt, 10*time.Second)
	i := strings.Index(out, "nvrt_")
	if i < 0 {
		t.Fatalf("no token printed: %q", out)
	}
	token := strings.Fields(out[i:])[0]
	c := client{t: t, base: "http://" + apiAddr, token: token}
	var cams []api.Camera
	c.getJSON("/api/v1/cameras", &cams)
	if len(cams) != 1 || cams[0].Name != "lobby" || cams[0].State != "recording" || strings.Contains(cams[0].URL, "cam-secret-1") {
		t.Errorf("API cameras with the console's token: %+v", cams)
	}
	// The retention applies at once: asked for the last hour, the VMS sees
	// everything older than 30 minutes as evicted.
	var recs api.Recordings
	c.getJSON("/api/v1/recordings?camera=lobby&from=-1h", &recs)
	if len(recs.Gaps) == 0 || recs.Gaps[0].Cause != "evicted" || recs.Gaps[0].End.Before(time.Now().Add(-31*time.Minute)) {
		t.Errorf("retention of 30m not applied: %+v", recs)
	}
	if code, _, _ := (client{t: t, base: "http://" + apiAddr, token: "nvrt_wrong"}).get("/api/v1/cameras"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	stop()

	// Restart: the configuration survived; the camera records by itself.
	_, apiAddr, _ = runAppliance(t, opts)
	c.base = "http://" + apiAddr
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, _, body := c.get("/api/v1/cameras/lobby")
		var cam api.Camera
		if code == 200 && json.Unmarshal(body, &cam) == nil && cam.State == "recording" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart lobby is not recording: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
