package qemutest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// TestSignedUpgrade is scenario 5, driven from the console's "firmware
// install" (bundles served to the guest over HTTP by the host): a newer
// signed bundle installs with progress, boots as a trial and is confirmed by
// nvrd once recording is healthy; a signed bundle whose firmware never comes
// up (its initramfs is not one: the trial panics) falls back to the
// previous slot; bundles with a bad signature (manifest edited after
// signing), an unknown key, the wrong board, a truncated file, a corrupt
// part and an older version (without --allow-downgrade) are each refused on
// one error line with nothing written. (The update disk's install at boot is
// scenario 6's.)
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
	srv := bundleServer(t, dir)
	packBundle(t, filepath.Join(dir, "newer.nvrfw"), key, bundle.Manifest{Version: "0.2.0", Boards: []string{"qemu"}, BuildID: "qemutest-newer"}, nil)
	packBundle(t, filepath.Join(dir, "broken.nvrfw"), key, bundle.Manifest{Version: "0.3.0", Boards: []string{"qemu"}}, []byte("this is not an initramfs\n"))
	refusals := refusedBundles(t, dir, key)

	// Boot 1 (slot a): install the newer bundle from the console, reboot.
	slot, v := a.start(ctx, "install", "")
	if slot != slots.A {
		t.Fatalf("first boot chose slot %s", slot)
	}
	_, us := v.expect(userSpaceRe, 3*time.Minute)
	lp := firstLogin(v)
	t.Logf("boot 1 (slot a): user space %v, login prompt %v", us.Round(time.Millisecond), lp.Round(time.Millisecond))
	installFromConsole(t, v, srv+"/newer.nvrfw", "0.2.0", slots.B)
	reboot(t, v)
	a.boot.readBack()
	st := a.boot.status(slots.A)
	if st.Trial != slots.B || st.Versions[slots.B] != "0.2.0" || st.Default != slots.A {
		t.Fatalf("after the install: %+v, want b=0.2.0 armed for a trial, a default", st)
	}

	// Boot 2: the trial of b; nvrd confirms it after healthy recording.
	// Then the broken bundle goes into the other slot.
	slot, v = a.start(ctx, "trial", "")
	if slot != slots.B {
		t.Fatalf("trial boot chose slot %s", slot)
	}
	_, us = v.expect(userSpaceRe, 3*time.Minute)
	lp = login(v)
	v.run(fmt.Sprintf("cameras add cam1 rtsp://10.0.2.2:%d/cam1", a.camPort), 2*time.Minute, false)
	api := newAPI(a.apiPort, v.createToken("qemutest"))
	api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)
	t.Logf("boot 2 (trial b): user space %v, login prompt %v, first recorded frame %v", us.Round(time.Millisecond),
		lp.Round(time.Millisecond), time.Since(v.start).Round(time.Millisecond))
	if !waitLog(t, v, "trial boot confirmed", 90*time.Second) {
		t.Fatalf("the healthy trial of b was not confirmed (nvrd logged no \"trial boot confirmed\" within 90 s of recording)")
	}
	out := v.run("firmware status", 30*time.Second, false)
	t.Logf("firmware status after the trial:\n%s", out)
	// (The bundle's nvrd is the image's: it reports the image's version.)
	if !strings.Contains(out, "in slot b\n") || strings.Contains(out, "trial boot") {
		t.Errorf("firmware status after the confirmed trial:\n%s", out)
	}
	installFromConsole(t, v, srv+"/broken.nvrfw", "0.3.0", slots.A)
	reboot(t, v)
	a.boot.readBack()
	if st := a.boot.status(slots.B); st.Default != slots.B || st.Trial != slots.A {
		t.Fatalf("after the trial and the broken install: %+v, want b default, a armed", st)
	}

	// Boot 3: the broken trial panics; boot 4 is back on b by itself.
	if slot, v = a.start(ctx, "broken-trial", ""); slot != slots.A {
		t.Fatalf("the broken bundle's trial chose slot %s", slot)
	}
	v.expectString("Kernel panic", 3*time.Minute)
	v.waitExit(time.Minute)
	v.stop()
	a.boot.readBack()
	envBefore, _ := os.ReadFile(filepath.Join(a.boot.dir, slots.EnvFile))
	slot, v = a.start(ctx, "fallback", "")
	if slot != slots.B {
		t.Fatalf("after the failed trial the bootloader chose %s, want b", slot)
	}
	lp = login(v)
	out = v.run("firmware status", 30*time.Second, false)
	t.Logf("back on slot %s after the failed trial, login prompt after %v:\n%s", slot, lp.Round(time.Millisecond), out)
	api.waitFrames(t, ctx, "cam1", 1, 2*time.Minute)

	// Refused bundles, from the same console session: one error line each
	// saying why, and nothing written (checked on the boot disk after).
	for _, r := range refusals {
		out := v.run("firmware install "+srv+"/"+r.file, 3*time.Minute, true)
		lines := errorLines(out)
		t.Logf("%s: %s", r.file, strings.Join(lines, " | "))
		if len(lines) != 1 || !strings.Contains(strings.ToLower(lines[0]), r.why) || strings.Contains(out, "installed in slot") {
			t.Errorf("%s: want one error line mentioning %q; console:\n%s", r.file, r.why, out)
		}
	}
	poweroff(t, v)
	v.stop()
	a.boot.readBack()
	envAfter, _ := os.ReadFile(filepath.Join(a.boot.dir, slots.EnvFile))
	if !bytes.Equal(envBefore, envAfter) {
		t.Errorf("the refused bundles changed grubenv:\n%s\n->\n%s", envBefore, envAfter)
	}
	if st := a.boot.status(slots.B); st.Default != slots.B || st.Trial != "" || st.Versions[slots.A] != "0.3.0" {
		t.Errorf("slots %+v after the refused bundles, want b default, no trial, a still 0.3.0", st)
	}
}

// refusal is a bundle the console must refuse, and a word of the reason.
type refusal struct{ file, why string }

// refusedBundles writes the bundles scenario 5 offers to be refused into
// dir.
func refusedBundles(t *testing.T, dir string, key ed25519.PrivateKey) []refusal {
	t.Helper()
	good := filepath.Join(dir, "good.nvrfw")
	packBundle(t, good, key, bundle.Manifest{Version: "0.4.0", Boards: []string{"qemu"}}, nil)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	other, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	packBundle(t, filepath.Join(dir, "unknown-key.nvrfw"), other, bundle.Manifest{Version: "0.4.0", Boards: []string{"qemu"}}, nil)
	packBundle(t, filepath.Join(dir, "wrong-board.nvrfw"), key, bundle.Manifest{Version: "0.4.0", Boards: []string{"nvr8"}}, nil)
	packBundle(t, filepath.Join(dir, "older.nvrfw"), key, bundle.Manifest{Version: "0.0.9", Boards: []string{"qemu"}}, nil)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("truncated.nvrfw", goodBytes[:len(goodBytes)/2])
	bad := bytes.Clone(goodBytes)
	bad[len(bad)/2] ^= 0xff
	write("corrupt.nvrfw", bad)
	// Signed manifest edited (same length, so only the signature can tell).
	tampered := bytes.Replace(goodBytes, []byte(`"version":"0.4.0"`), []byte(`"version":"0.4.1"`), 1)
	if bytes.Equal(tampered, goodBytes) {
		t.Fatal("the bundle's manifest does not hold \"version\":\"0.4.0\"")
	}
	write("bad-signature.nvrfw", tampered)
	return []refusal{
		{"bad-signature.nvrfw", "signature"}, {"unknown-key.nvrfw", "unknown key"}, {"wrong-board.nvrfw", "board"},
		{"truncated.nvrfw", "truncated"}, {"corrupt.nvrfw", "corrupt"}, {"older.nvrfw", "downgrade"},
	}
}

// bundleServer serves dir over HTTP on 127.0.0.1 until the test ends and
// returns its base URL as the guest sees it (slirp's 10.0.2.2 is the
// host's 127.0.0.1).
func bundleServer(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return "http://10.0.2.2:" + u.Port()
}

var progressRe = regexp.MustCompile(`(?m)^(downloading|verifying|writing slot [ab]): (\d+)%$`)

// installFromConsole runs "firmware install" and checks its progress
// lines and its result.
func installFromConsole(t *testing.T, v *vm, source, version string, slot slots.Slot) {
	t.Helper()
	start := time.Now()
	out := v.run("firmware install "+source, 5*time.Minute, false)
	steps := map[string][]string{}
	for _, m := range progressRe.FindAllStringSubmatch(out, -1) {
		steps[m[1]] = append(steps[m[1]], m[2])
	}
	t.Logf("firmware install %s in %v: progress %v", source, time.Since(start).Round(time.Millisecond), steps)
	for _, step := range []string{"downloading", "verifying", "writing slot " + string(slot)} {
		p := steps[step]
		if len(p) < 3 || p[len(p)-1] != "100" {
			t.Errorf("%s: want progress lines up to 100%%, got %v; console:\n%s", step, p, out)
		}
	}
	want := fmt.Sprintf("firmware %s installed in slot %s, armed for one trial boot: reboot to try it.", version, slot)
	if !strings.Contains(out, want) {
		t.Fatalf("firmware install: no %q; console:\n%s", want, out)
	}
}

// errorLines returns the "error: " lines of console output.
func errorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "error: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// reboot reboots the appliance from the console; with -no-reboot QEMU
// exits, and the harness plays the bootloader before the next start.
func reboot(t *testing.T, v *vm) {
	t.Helper()
	v.send("reboot\r")
	v.expectString(`Type "reboot" to confirm: `, 30*time.Second)
	v.send("reboot\r")
	if err := v.waitExit(2 * time.Minute); err != nil {
		t.Errorf("qemu after reboot: %v", err)
	}
	v.stop()
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
