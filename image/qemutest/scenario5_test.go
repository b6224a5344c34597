package qemutest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// appliance is one boot of the A/B appliance: the harness plays the
// bootloader on the boot disk, then boots the chosen slot.
type appliance struct {
	t                *testing.T
	e                *env
	boot             *bootDisk
	perm, data       string
	apiPort, camPort int
	n                int
}

func (a *appliance) start(ctx context.Context, name, update string, extra ...string) (slots.Slot, *vm) {
	a.t.Helper()
	slot, kernel, initrd := a.boot.boot(ctx)
	a.n++
	cmdline := append([]string{slots.CmdlineKey + "=" + string(slot), "nvr.boot=/dev/vdc", "nvr.args=--confirm-after=15s"}, extra...)
	disks := []string{a.perm, a.data, a.boot.img}
	if update != "" {
		disks = append(disks, update)
		cmdline = append(cmdline, "nvr.update=/dev/vdd")
	}
	v := startVM(a.t, ctx, vmOptions{name: fmt.Sprintf("s5-%d-%s-%s", a.n, name, slot), kernel: kernel, initrd: initrd,
		cmdline: cmdline, disks: disks, apiPort: a.apiPort, watchdog: true})
	return slot, v
}

// TestSignedUpgrade is scenario 5: a newer signed bundle installed in the
// guest (from an update disk, by nvrd firmware install) boots as a trial
// and is confirmed by nvrd once recording is healthy; a signed bundle whose
// firmware never comes up (its initramfs is not one: the trial panics)
// falls back to the previous slot; bundles with a bad signature (manifest
// edited after signing), an unknown key, a corrupt part, a truncated file
// and the wrong board are refused with nothing written.
func TestSignedUpgrade(t *testing.T) {
	e := setup(t)
	needTool(t, "debugfs", "e2fsprogs")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	a := &appliance{t: t, e: e, boot: newBootDisk(t, e), apiPort: freePort(t), camPort: freePort(t)}
	camsim(t, e, a.camPort, "cam1=h264")
	a.perm, a.data = newDisks(t)
	if err := a.boot.m.Provision(ctx, openBundle(t, filepath.Join(outDir, "bundle.nvrfw")), nil); err != nil {
		t.Fatal(err)
	}
	key := devKey(t)
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.nvrfw")
	packBundle(t, newer, key, bundle.Manifest{Version: "0.2.0", Boards: []string{"qemu"}, BuildID: "qemutest-newer"}, nil)

	// Boot 1 (slot a): the update disk's bundle goes into b, then reboot.
	slot, v := a.start(ctx, "install", updateDisk(t, newer))
	if slot != slots.A {
		t.Fatalf("first boot chose slot %s", slot)
	}
	installed := v.expectString("appliance: update installed", 3*time.Minute)
	if err := v.waitExit(time.Minute); err != nil {
		t.Fatalf("qemu after the install's reboot: %v", err)
	}
	v.stop()
	a.boot.readBack()
	st := a.boot.status(slots.A)
	t.Logf("boot 1: installed after %v; slots %+v", installed.Round(time.Millisecond), st)
	if st.Trial != slots.B || st.Versions[slots.B] != "0.2.0" || st.Default != slots.A {
		t.Fatalf("after the install: %+v, want b=0.2.0 armed for a trial, a default", st)
	}

	// Boot 2: the trial of b; nvrd confirms it after healthy recording.
	slot, v = a.start(ctx, "trial", "")
	if slot != slots.B {
		t.Fatalf("trial boot chose slot %s", slot)
	}
	_, us := v.expect(userSpaceRe, 3*time.Minute)
	lp := firstLogin(v)
	v.run(fmt.Sprintf("cameras add cam1 rtsp://10.0.2.2:%d/cam1", a.camPort), 2*time.Minute, false)
	api := newAPI(a.apiPort, v.createToken("qemutest"))
	api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	t.Logf("boot 2 (trial b): user space %v, login prompt %v, first recorded frame %v", us.Round(time.Millisecond),
		lp.Round(time.Millisecond), time.Since(v.start).Round(time.Millisecond))
	confirmed := waitLog(t, v, "trial boot confirmed", 90*time.Second)
	out := v.run("firmware status", 30*time.Second, false)
	t.Logf("firmware status after the trial:\n%s", out)
	poweroff(t, v)
	v.stop()
	a.boot.readBack()
	good := slots.B
	if st := a.boot.status(slots.B); !confirmed || st.Default != slots.B || st.Trial != "" {
		// Go on from the slot that is good, to test the rest.
		t.Errorf("the healthy trial of b was not confirmed (nvrd logged no \"trial boot confirmed\" within 90 s of recording); slots %+v", st)
		good = st.Default
	}

	// A signed firmware that never comes up: installed into the other
	// slot, its trial panics, and the next power-on is back on the good one.
	broken := filepath.Join(dir, "broken.nvrfw")
	packBundle(t, broken, key, bundle.Manifest{Version: "0.3.0", Boards: []string{"qemu"}}, []byte("this is not an initramfs\n"))
	if slot, v = a.start(ctx, "install-broken", updateDisk(t, broken)); slot != good {
		t.Fatalf("booted %s, want the good slot %s", slot, good)
	}
	v.expectString("appliance: update installed", 3*time.Minute)
	v.waitExit(time.Minute)
	v.stop()
	a.boot.readBack()
	slot, v = a.start(ctx, "broken-trial", "")
	if slot != good.Other() {
		t.Fatalf("the broken bundle's trial chose slot %s", slot)
	}
	v.expectString("Kernel panic", 3*time.Minute)
	v.waitExit(time.Minute)
	v.stop()
	a.boot.readBack()
	slot, v = a.start(ctx, "fallback", "")
	if slot != good {
		t.Fatalf("after the failed trial the bootloader chose %s, want %s", slot, good)
	}
	lp = login(v)
	out = v.run("firmware status", 30*time.Second, false)
	t.Logf("back on slot %s after the failed trial, login prompt after %v:\n%s", slot, lp.Round(time.Millisecond), out)
	api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	poweroff(t, v)
	v.stop()
	a.boot.readBack()

	// Refused bundles: nothing is written, the appliance boots on.
	goodBytes, err := os.ReadFile(newer)
	if err != nil {
		t.Fatal(err)
	}
	other, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	unknownKey := filepath.Join(dir, "unknown-key.nvrfw")
	packBundle(t, unknownKey, other, bundle.Manifest{Version: "0.4.0", Boards: []string{"qemu"}}, nil)
	wrongBoard := filepath.Join(dir, "wrong-board.nvrfw")
	packBundle(t, wrongBoard, key, bundle.Manifest{Version: "0.4.0", Boards: []string{"nvr8"}}, nil)
	truncated := filepath.Join(dir, "truncated.nvrfw")
	if err := os.WriteFile(truncated, goodBytes[:len(goodBytes)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.nvrfw")
	bad := bytes.Clone(goodBytes)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	// Signed manifest edited (same length, so only the signature can tell).
	badSig := filepath.Join(dir, "bad-signature.nvrfw")
	tampered := bytes.Replace(goodBytes, []byte(`"version":"0.2.0"`), []byte(`"version":"0.2.1"`), 1)
	if bytes.Equal(tampered, goodBytes) {
		t.Fatal("the bundle's manifest does not hold \"version\":\"0.2.0\"")
	}
	if err := os.WriteFile(badSig, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	envBefore, _ := os.ReadFile(filepath.Join(a.boot.dir, slots.EnvFile))
	for _, tc := range []struct{ name, path, why string }{
		{"bad-signature", badSig, "signature"},
		{"unknown-key", unknownKey, "key"},
		{"wrong-board", wrongBoard, "board"},
		{"truncated", truncated, ""},
		{"corrupt", corrupt, ""},
	} {
		_, v = a.start(ctx, "refuse-"+tc.name, updateDisk(t, tc.path))
		// nvrd firmware install's reason is on the lines before.
		m, _ := v.expect(regexp.MustCompile(`(?s)appliance: installing /update/bundle.nvrfw\r?\n(.*?)appliance: update refused`), 3*time.Minute)
		v.expectString("login: ", 3*time.Minute)
		v.stop()
		a.boot.readBack()
		log := m[1]
		t.Logf("%s refused: %s", tc.name, strings.TrimSpace(log))
		if tc.why != "" && !strings.Contains(strings.ToLower(log), tc.why) {
			t.Errorf("%s: the refusal does not mention %q; console:\n%s", tc.name, tc.why, log)
		}
		envAfter, _ := os.ReadFile(filepath.Join(a.boot.dir, slots.EnvFile))
		if !bytes.Equal(envBefore, envAfter) {
			t.Errorf("%s: the refused bundle changed grubenv", tc.name)
		}
		if st := a.boot.status(good); st.Default != good || st.Trial != "" {
			t.Errorf("%s: slots %+v after a refused bundle", tc.name, st)
		}
	}
}

// waitLog waits for s in nvrd's log (the second serial port).
func waitLog(t *testing.T, v *vm, s string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(v.nvrdLog); bytes.Contains(b, []byte(s)) {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}
