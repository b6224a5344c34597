package qemutest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPSUFault is scenario 2's PMBus half: i2c-stub (loaded at boot with
// chip_addr=0x58,0x59, the qemu board profile's PSU1 and PSU2) plays two
// PSUs; the guest agent flips PSU1's STATUS_WORD (0x79) to OFF and
// POWER_GOOD_NEGATED with an SMBus write-word, and the fault shows on the
// API and as an alarm on the console; clearing it clears them.
//
// The drive-bay half (gpio-sim) is not done: Debian's kernel lacks
// gpio-sim, and building it from linux-source at test time is not written.
func TestPSUFault(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	apiPort := freePort(t)
	perm, data := newDisks(t)
	v := startVM(t, ctx, vmOptions{name: "s2-psu", kernel: e.kernel, initrd: e.initrd, disks: []string{perm, data},
		apiPort: apiPort, agent: true,
		cmdline: []string{"modules_load=i2c_stub", "i2c_stub.chip_addr=0x58,0x59", "nvr.agent=/bin/qemutest-agent"}})
	_, us := v.expect(userSpaceRe, 3*time.Minute)
	lp := firstLogin(v)
	t.Logf("boot: user space %v, login prompt %v (no camera in this scenario)", us.Round(time.Millisecond), lp.Round(time.Millisecond))
	api := newAPI(apiPort, v.createToken("qemutest"))

	psu := func(st statusView, name string) (present bool, faults []string, errText string, ok bool) {
		if st.Board == nil {
			return false, nil, "", false
		}
		for _, p := range st.Board.PSUs {
			if p.Name == name {
				return p.Present, p.Faults, p.Error, true
			}
		}
		return false, nil, "", false
	}
	waitPSU := func(what string, cond func(present bool, faults []string) bool) statusView {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		var st statusView
		for time.Now().Before(deadline) {
			st = statusView{}
			if err := api.get(ctx, "/api/v1/status", &st); err == nil {
				if present, faults, _, ok := psu(st, "PSU1"); ok && cond(present, faults) {
					return st
				}
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("PSU1 not %s within a minute: board %+v; nvrd log:\n%s", what, st.Board, v.logTail())
		return st
	}
	st := waitPSU("present without faults", func(p bool, f []string) bool { return p && len(f) == 0 })
	t.Logf("PSU1 read over SMBus: %+v", st.Board.PSUs)

	if err := v.agentDo("word SMBus_stub 0x58 0x79 0x0840", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	flipped := time.Now()
	st = waitPSU("faulted", func(p bool, f []string) bool { return p && len(f) > 0 })
	_, faults, _, _ := psu(st, "PSU1")
	t.Logf("PSU1 faults %v on the API %v after STATUS_WORD changed; alarms %+v", faults, time.Since(flipped).Round(time.Millisecond), st.Alarms)
	for _, want := range []string{"OFF", "POWER_GOOD_NEGATED"} {
		if !slices.ContainsFunc(faults, func(f string) bool { return strings.Contains(f, want) }) {
			t.Errorf("PSU1 faults %v lack %s", faults, want)
		}
	}
	if !slices.ContainsFunc(st.Alarms, func(a alarmView) bool { return a.Source == "PSU1" && a.Severity == "critical" }) {
		t.Errorf("no PSU1 alarm on the API: %+v", st.Alarms)
	}
	out := v.run("show status", 30*time.Second, false)
	if !strings.Contains(out, "PSU1") {
		t.Errorf("the console's status shows no PSU1 alarm:\n%s", out)
	}
	t.Logf("console:\n%s", out)

	if err := v.agentDo("word SMBus_stub 0x58 0x79 0x0000", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitPSU("cleared", func(p bool, f []string) bool { return p && len(f) == 0 })
	poweroff(t, v)
}
