package qemutest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// statusView is the part of GET /api/v1/status the tests read.
type statusView struct {
	Healthy  bool        `json:"healthy"`
	Problems []string    `json:"problems"`
	Alarms   []alarmView `json:"alarms"`
	Board    *struct {
		WatchdogReset bool `json:"watchdog_reset"`
		PSUs          []struct {
			Name    string   `json:"name"`
			Present bool     `json:"present"`
			Faults  []string `json:"faults"`
			Error   string   `json:"error"`
		} `json:"psus"`
		Bays []struct {
			Name    string `json:"name"`
			Present bool   `json:"present"`
		} `json:"bays"`
		Arrays []struct {
			Name   string `json:"name"`
			Health string `json:"health"`
			Error  string `json:"error"`
		} `json:"arrays"`
	} `json:"board"`
}

// alarmView is one alarm of GET /api/v1/status.
type alarmView struct {
	Source   string `json:"source"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// TestWatchdogReset is scenario 4: the recording volume hangs (every write
// to the data disk is throttled to 1 byte/s through QMP, which is what a
// dying disk that never completes a flush looks like to nvrd), the store's
// commits stall, nvrd stops petting the i6300esb, and the watchdog resets
// the guest: QMP reports WATCHDOG, the guest reboots in the same QEMU, and
// the next boot reports a watchdog reset (the i6300esb's boot status) on
// the API, and records again.
func TestWatchdogReset(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	camPort, apiPort := freePort(t), freePort(t)
	camsim(t, e, camPort, "cam1=h264")
	perm, data := newDisks(t)
	v := startVM(t, ctx, vmOptions{name: "s4-watchdog", kernel: e.kernel, initrd: e.initrd,
		disks: []string{perm, data}, apiPort: apiPort, watchdog: true, reboot: true})
	_, us := v.expect(userSpaceRe, 3*time.Minute)
	lp := firstLogin(v)
	v.run(fmt.Sprintf("cameras add cam1 rtsp://10.0.2.2:%d/cam1", camPort), 2*time.Minute, false)
	api := newAPI(apiPort, v.createToken("qemutest"))
	api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	t.Logf("boot 1: user space %v, login prompt %v, first recorded frame %v", us.Round(time.Millisecond),
		lp.Round(time.Millisecond), time.Since(v.start).Round(time.Millisecond))
	var st statusView
	if err := api.get(ctx, "/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Board == nil || st.Board.WatchdogReset {
		t.Fatalf("first boot: board status %+v, want no watchdog reset", st.Board)
	}

	// Hang the recording volume (drive d1 is /dev/vdb, mounted on /data).
	hung := time.Now()
	throttle(t, v, 1)
	// nvrd's watchdog guard pets through a 2-minute boot grace, then only
	// while healthy; the i6300esb's timeout is 30 s.
	var wd []qmpEvent
	deadline := time.Now().Add(5 * time.Minute)
	for len(wd) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no WATCHDOG event within 5 min of hanging the disk; console:\n%s\nnvrd log:\n%s", v.tail(), v.logTail())
		}
		time.Sleep(time.Second)
		wd = v.qmp.eventsNamed("WATCHDOG")
	}
	throttle(t, v, 0) // the disk is healthy again for the next boot
	var action struct {
		Action string `json:"action"`
	}
	json.Unmarshal(wd[0].Data, &action)
	t.Logf("WATCHDOG (action %s) %v after the disk hung, %v after boot", action.Action,
		wd[0].At.Sub(hung).Round(time.Second), wd[0].At.Sub(v.start).Round(time.Second))
	if action.Action != "reset" {
		t.Errorf("WATCHDOG action %q, want reset", action.Action)
	}

	// Boot 2 in the same QEMU.
	reset := wd[0].At
	v.expect(userSpaceRe, 3*time.Minute)
	us2 := time.Since(reset)
	login(v)
	lp2 := time.Since(reset)
	if err := api.get(ctx, "/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Board == nil || !st.Board.WatchdogReset {
		t.Errorf("after the watchdog reset the board status is %+v, want watchdog_reset", st.Board)
	}
	api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	t.Logf("boot 2 (after the reset): user space %v, login prompt %v, first recorded frame %v",
		us2.Round(time.Millisecond), lp2.Round(time.Millisecond), time.Since(reset).Round(time.Millisecond))
	out := v.run("events --limit 20", 30*time.Second, false)
	if !strings.Contains(out, "watchdog-reset") {
		t.Errorf("the console's events do not show the watchdog reset:\n%s", out)
	}
}

// throttle limits writes to the data disk (drive d1) to bps bytes per
// second; 0 lifts the limit.
func throttle(t *testing.T, v *vm, bps int) {
	t.Helper()
	args := map[string]any{"device": "d1", "bps": 0, "bps_rd": 0, "bps_wr": bps, "iops": 0, "iops_rd": 0, "iops_wr": 0}
	if _, err := v.qmp.execute("block_set_io_throttle", args); err != nil {
		t.Fatal(err)
	}
}
