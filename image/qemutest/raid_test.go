package qemutest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRAIDDiskRemoved is scenario 3: the recording volume is a RAID1 of two
// virtio disks (made by mdadm in the guest at first boot over identical
// ext4 copies); one disk is removed through QMP device_del while a camera
// records; recording goes on with no frame lost or dropped and no gap, and
// the array is reported degraded.
func TestRAIDDiskRemoved(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	camPort, apiPort := freePort(t), freePort(t)
	camsim(t, e, camPort, "cam1=h264")
	dir := t.TempDir()
	perm := filepath.Join(dir, "perm.img")
	makeDisk(t, perm, "perm", 64)
	m1, m2 := filepath.Join(dir, "m1.img"), filepath.Join(dir, "m2.img")
	makeDisk(t, m1, "data", 448) // the array's content; metadata 1.0 goes after it
	for _, m := range []string{m1, m2} {
		if m == m2 {
			b, err := os.ReadFile(m1)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m2, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Truncate(m, 512<<20); err != nil {
			t.Fatal(err)
		}
	}
	v := startVM(t, ctx, vmOptions{name: "s3-raid", kernel: e.kernel, initrd: e.initrd, disks: []string{perm, m1, m2},
		apiPort: apiPort, cmdline: []string{"nvr.raid=/dev/vdb,/dev/vdc"}})
	_, us := v.expect(userSpaceRe, 3*time.Minute)
	lp := firstLogin(v)
	v.run(fmt.Sprintf("cameras add cam1 rtsp://10.0.2.2:%d/cam1", camPort), 2*time.Minute, false)
	added := time.Now()
	api := newAPI(apiPort, v.createToken("qemutest"))
	c := api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	firstFrame := c.LastFrame
	t.Logf("boot: user space %v, login prompt %v, first recorded frame %v", us.Round(time.Millisecond),
		lp.Round(time.Millisecond), time.Since(v.start).Round(time.Millisecond))
	var st statusView
	if err := api.get(ctx, "/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("arrays before: %+v", st.Board.Arrays)
	c = api.waitFrames(t, ctx, "cam1", c.FramesRecorded+10*25, 2*time.Minute)

	if _, err := v.qmp.execute("device_del", map[string]any{"id": "disk2"}); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	deadline := time.Now().Add(time.Minute)
	for len(v.qmp.eventsNamed("DEVICE_DELETED")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no DEVICE_DELETED event within a minute of device_del")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("disk2 (vdc) deleted %v after device_del", time.Since(removed).Round(time.Millisecond))
	before := c.FramesRecorded
	c = api.waitFrames(t, ctx, "cam1", before+15*25, 2*time.Minute)
	var health string
	deadline = time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st = statusView{}
		if err := api.get(ctx, "/api/v1/status", &st); err == nil && st.Board != nil {
			for _, a := range st.Board.Arrays {
				if a.Name == "md0" {
					health = a.Health
				}
			}
		}
		if health == "degraded" {
			break
		}
		time.Sleep(time.Second)
	}
	if health != "degraded" {
		t.Errorf("md0 health %q after a member was removed, want degraded; arrays %+v", health, st.Board)
	}
	t.Logf("after removal: camera %+v; arrays %+v; alarms %+v", c, st.Board.Arrays, st.Alarms)
	if c.State != "recording" || c.FramesDropped != 0 {
		t.Errorf("camera after the removal: %+v, want recording with no frame dropped", c)
	}
	var rec struct {
		Spans []struct{ Start, End time.Time } `json:"spans"`
		Gaps  []json.RawMessage                `json:"gaps"`
	}
	q := fmt.Sprintf("/api/v1/recordings?camera=cam1&from=%s&to=%s", firstFrame.UTC().Format(time.RFC3339Nano),
		c.LastFrame.UTC().Format(time.RFC3339Nano))
	if err := api.get(ctx, q, &rec); err != nil {
		t.Fatal(err)
	}
	t.Logf("recordings from the first frame (camera added %v before it) to the last: %d span(s) %+v, %d gap(s)",
		firstFrame.Sub(added).Round(time.Millisecond), len(rec.Spans), rec.Spans, len(rec.Gaps))
	if len(rec.Spans) != 1 || len(rec.Gaps) != 0 {
		t.Errorf("footage around the disk removal is not one continuous span: %+v, gaps %s", rec.Spans, rec.Gaps)
	}
	out := v.run("show status", 30*time.Second, false)
	t.Logf("console:\n%s", out)
	poweroff(t, v)
}
