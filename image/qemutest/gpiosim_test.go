package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/u-root/mkuimage/cpio"
)

// gpioSimScript builds gpio-sim for the image's kernel from Debian's
// linux-source and linux-headers packages of the same version (installed
// or downloaded here, never committed). Debian's 6.1 has neither gpio-sim
// nor the irq_sim it needs, so both are built into one module; irq_sim's
// one call of the unexported irq_to_desc becomes generic_handle_irq.
const gpioSimScript = `set -e
cd "$WORK"
[ -d /usr/src/linux-headers-$KVER ] || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq --no-install-recommends linux-headers-$KVER=$PKGVER >/dev/null; }
ls linux-source-${MAJ}_*.deb >/dev/null 2>&1 || apt-get download linux-source-$MAJ=$PKGVER
rm -rf src mod && mkdir -p src mod
dpkg-deb --fsys-tarfile linux-source-${MAJ}_*.deb | tar -xO ./usr/src/linux-source-$MAJ.tar.xz | xz -dc | tar -x -C src \
	linux-source-$MAJ/drivers/gpio/gpio-sim.c linux-source-$MAJ/drivers/gpio/gpiolib.h linux-source-$MAJ/kernel/irq/irq_sim.c
cp src/linux-source-$MAJ/drivers/gpio/gpio-sim.c mod/gpio-sim-main.c
cp src/linux-source-$MAJ/drivers/gpio/gpiolib.h src/linux-source-$MAJ/kernel/irq/irq_sim.c mod/
sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' mod/irq_sim.c
printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' > mod/Makefile
make -s -C /usr/src/linux-headers-$KVER M="$PWD/mod" modules
`

// gpioSimOverlay returns a cpio archive adding /lib/qemutest/gpio-sim.ko,
// building the module on first use (cached in the build directory).
func gpioSimOverlay(t *testing.T, e *env) string {
	t.Helper()
	kvers, _ := filepath.Glob(filepath.Join(kernelRoot, "lib", "modules", "*"))
	debs, _ := filepath.Glob(filepath.Join(kernelRoot, "..", "debs", "linux-image-*-amd64_*_amd64.deb"))
	if len(kvers) != 1 || len(debs) == 0 {
		t.Fatalf("the image's kernel package is not in out/kernel (%v, %v)", kvers, debs)
	}
	kver := filepath.Base(kvers[0])
	out := filepath.Join(e.cache, "gpio-sim-"+kver+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	for _, tool := range []string{"make", "gcc", "xz", "dpkg-deb"} {
		needTool(t, tool, tool)
	}
	var pkgver string
	for _, d := range debs {
		if strings.HasPrefix(filepath.Base(d), "linux-image-"+kver+"_") {
			pkgver = strings.Split(filepath.Base(d), "_")[1]
		}
	}
	maj := regexp.MustCompile(`^\d+\.\d+`).FindString(kver)
	if pkgver == "" || maj == "" {
		t.Fatalf("cannot tell the kernel package version of %s from %v", kver, debs)
	}
	work, err := filepath.Abs(filepath.Join(e.cache, "gpio-sim"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", gpioSimScript)
	cmd.Env = append(os.Environ(), "WORK="+work, "KVER="+kver, "PKGVER="+pkgver, "MAJ="+maj)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gpio-sim for %s (%s): %v\n%s", kver, pkgver, err, b)
	}
	t.Logf("built gpio-sim for %s in %v", kver, time.Since(start).Round(time.Second))
	ko, err := os.ReadFile(filepath.Join(work, "mod", "gpio-sim.ko"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	recs := []cpio.Record{cpio.Directory("lib", 0o755), cpio.Directory("lib/qemutest", 0o755),
		cpio.StaticFile("lib/qemutest/gpio-sim.ko", string(ko), 0o444)}
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBayEvent is scenario 2's drive-bay half: gpio-sim (built at test
// time) plays the qemu profile's backplane, chip nvr-bays; the guest agent
// pulls BAY0's presence line up (active low: the drive is pulled out) and
// back down, and the API and the event log show the bay's state follow.
func TestBayEvent(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	initrd := filepath.Join(t.TempDir(), "initrd")
	img, err := os.ReadFile(e.initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendOverlay(initrd, img, gpioSimOverlay(t, e)); err != nil {
		t.Fatal(err)
	}
	apiPort := freePort(t)
	perm, data := newDisks(t)
	v := startVM(t, ctx, vmOptions{name: "s2-bays", kernel: e.kernel, initrd: initrd, disks: []string{perm, data},
		apiPort: apiPort, agent: true, cmdline: []string{"nvr.agent=/bin/qemutest-agent"}})
	_, us := v.expect(userSpaceRe, 3*time.Minute)
	lp := firstLogin(v)
	t.Logf("boot: user space %v, login prompt %v (no camera in this scenario)", us.Round(time.Millisecond), lp.Round(time.Millisecond))
	api := newAPI(apiPort, v.createToken("qemutest"))
	waitBay := func(want bool) statusView {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		var st statusView
		for time.Now().Before(deadline) {
			st = statusView{}
			if err := api.get(ctx, "/api/v1/status", &st); err == nil && st.Board != nil {
				for _, b := range st.Board.Bays {
					if b.Name == "BAY0" && b.Present == want {
						return st
					}
				}
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("BAY0 present=%v not seen within a minute: board %+v; nvrd log:\n%s", want, st.Board, v.logTail())
		return st
	}
	st := waitBay(true)
	t.Logf("bays at boot: %+v", st.Board.Bays)
	for _, step := range []struct {
		pull    string
		present bool
	}{{"up", false}, {"down", true}} {
		if err := v.agentDo(fmt.Sprintf("pull nvr-bays 0 %s", step.pull), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		st = waitBay(step.present)
		t.Logf("line 0 pulled %s: BAY0 present=%v on the API after %v", step.pull, step.present, time.Since(at).Round(time.Millisecond))
	}
	out := v.run("events --system --limit 10", 30*time.Second, false)
	t.Logf("events:\n%s", out)
	if !strings.Contains(out, "BAY0") {
		t.Errorf("the event log shows no BAY0 event:\n%s", out)
	}
	poweroff(t, v)
}
