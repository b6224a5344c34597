package qemutest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newDisks makes a fresh config and recording disk.
func newDisks(t *testing.T) (perm, data string) {
	dir := t.TempDir()
	perm, data = filepath.Join(dir, "perm.img"), filepath.Join(dir, "data.img")
	makeDisk(t, perm, "perm", 64)
	makeDisk(t, data, "data", 512)
	return perm, data
}

// TestConsoleRecordExport is scenario 1: first boot, console login, a
// camera of the host's simulator configured on the console, recording seen
// through the API, and an exported clip that ffprobe accepts.
func TestConsoleRecordExport(t *testing.T) {
	e := setup(t)
	ffprobe := needTool(t, "ffprobe", "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	camPort, apiPort := freePort(t), freePort(t)
	camsim(t, e, camPort, "cam1=h264")
	perm, data := newDisks(t)
	v := startVM(t, ctx, vmOptions{name: "s1-console", kernel: e.kernel, initrd: e.initrd,
		disks: []string{perm, data}, apiPort: apiPort})
	var bt bootTimes
	_, bt.userSpace = v.expect(userSpaceRe, 3*time.Minute)
	bt.login = firstLogin(v)
	out := v.run(fmt.Sprintf("cameras add cam1 rtsp://10.0.2.2:%d/cam1", camPort), 2*time.Minute, false)
	t.Logf("cameras add:\n%s", out)
	added := time.Now()
	api := newAPI(apiPort, v.createToken("qemutest"))
	c := api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	bt.firstFrame = time.Since(v.start)
	t.Logf("boot: user space %v, login prompt %v, first recorded frame %v (camera added %v after boot)",
		bt.userSpace.Round(time.Millisecond), bt.login.Round(time.Millisecond), bt.firstFrame.Round(time.Millisecond),
		added.Sub(v.start).Round(time.Millisecond))
	// Record ~15 s more, then export from the camera's addition.
	c = api.waitFrames(t, ctx, "cam1", c.FramesRecorded+15*25, 2*time.Minute)
	if c.State != "recording" {
		t.Errorf("camera state %q, want recording (%+v)", c.State, c)
	}
	status := v.run("show status", 30*time.Second, false)
	if !strings.Contains(status, "cam1") {
		t.Errorf("show status does not list cam1:\n%s", status)
	}
	clip := filepath.Join(t.TempDir(), "cam1.mp4")
	api.exportClip(t, ctx, "cam1", added.Add(-10*time.Second), time.Now().Add(-2*time.Second), clip)
	frames, dur := probe(t, ffprobe, clip)
	t.Logf("exported clip: %d video frames, %.1f s; camera %+v", frames, dur, c)
	if frames < 100 || dur < 5 {
		t.Errorf("exported clip too short: %d frames, %.1f s", frames, dur)
	}
	poweroff(t, v)
}

// probe runs ffprobe on an MP4 and returns its video frame count and
// duration.
func probe(t *testing.T, ffprobe, path string) (int, float64) {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,nb_read_frames:format=duration", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe rejects the export: %v\n%s", err, out)
	}
	var r struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.Streams) != 1 || r.Streams[0].Codec != "h264" {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	n, _ := strconv.Atoi(r.Streams[0].Frames)
	d, _ := strconv.ParseFloat(r.Format.Duration, 64)
	return n, d
}

// poweroff shuts the appliance down from the console and waits for QEMU
// to exit cleanly.
func poweroff(t *testing.T, v *vm) {
	t.Helper()
	v.send("shutdown\r")
	v.expectString(`Type "shutdown" to confirm: `, 30*time.Second)
	v.send("shutdown\r")
	if err := v.waitExit(2 * time.Minute); err != nil {
		t.Errorf("qemu after shutdown: %v", err)
	}
}
