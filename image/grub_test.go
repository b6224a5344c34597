package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/image/mkimage"
)

// TestGrubScriptMatchesDecide checks that grub.cfg uses the environment
// keys, file names and command-line key firmware/slots uses.
func TestGrubScriptMatchesDecide(t *testing.T) {
	cfg, err := os.ReadFile("grub/grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	for _, want := range []string{
		"load_env --file ${nvr_env} " + slots.KeyDefault + " " + slots.KeyTrial,
		"save_env --file ${nvr_env} " + slots.KeyTrial,
		"set nvr_env=/" + slots.EnvFile,
		"/${nvr_boot}/" + slots.KernelFile,
		"/${nvr_boot}/" + slots.InitramfsFile,
		slots.CmdlineKey + "=${nvr_boot}",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	// The trial flag must be cleared and saved before the menu entry boots.
	if strings.Index(s, "save_env") > strings.Index(s, "menuentry") {
		t.Error("grub.cfg saves the environment after the menu entry")
	}
}

// grubTool returns the path of a GRUB utility (package grub-common); it is
// required under CI=true.
func grubTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (apt-get install grub-common): %v", name, err)
		}
		t.Skipf("%s is missing (apt-get install grub-common)", name)
	}
	return p
}

// TestGrubScriptSyntax runs GRUB's own parser over grub.cfg.
func TestGrubScriptSyntax(t *testing.T) {
	out, err := exec.Command(grubTool(t, "grub-script-check"), "grub/grub.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("grub-script-check: %v\n%s", err, out)
	}
}

// TestGrubEnvCompatible checks that GRUB's tools and firmware/slots read
// each other's environment blocks (GRUB adds a comment line that ParseEnv
// skips and Marshal does not write).
func TestGrubEnvCompatible(t *testing.T) {
	editenv := grubTool(t, "grub-editenv")
	file := filepath.Join(t.TempDir(), "grubenv")
	for _, args := range [][]string{{"create"}, {"set", "nvr_default=a", "nvr_trial=b"}} {
		if out, err := exec.Command(editenv, append([]string{file}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("grub-editenv %v: %v\n%s", args, err, out)
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env, err := slots.ParseEnv(raw)
	if err != nil {
		t.Fatalf("ParseEnv of grub-editenv's block: %v", err)
	}
	slot, next := slots.Decide(env)
	if slot != slots.B {
		t.Fatalf("Decide chose %s", slot)
	}
	b, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(editenv, file, "list").CombinedOutput()
	if err != nil || string(out) != "nvr_default=a\nnvr_trial=\n" {
		t.Fatalf("grub-editenv list of our block: %q, %v", out, err)
	}
}

// TestGRUBBoot boots a real GRUB (BIOS, from a disk made by
// grub/mkdisk.sh) with grub.cfg: a broken trial in slot b is booted once,
// its trial flag cleared by GRUB before the boot, and the next power-on
// falls back to slot a; then a good trial boots b. Runs with the smoke test.
func TestGRUBBoot(t *testing.T) {
	if !smokeEnabled() {
		t.Skip("GRUB boot under QEMU: set NVR_QEMU_SMOKE=1 (make qemu-smoke), it runs by itself under CI=true")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 is missing (apt-get install qemu-system-x86): %v", err)
	}
	for _, tool := range []string{"grub-mkimage", "mkfs.fat", "mcopy"} {
		grubTool(t, tool)
	}
	if _, err := os.Stat("/usr/lib/grub/i386-pc/boot.img"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("GRUB's BIOS images are missing (apt-get install grub-pc-bin): %v", err)
		}
		t.Skipf("GRUB's BIOS images are missing (apt-get install grub-pc-bin): %v", err)
	}
	ensureImage(t)
	pubRaw, err := os.ReadFile(pubkeyRel)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bundle.ParsePublicKeys(pubRaw)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.cpio")
	writeOverlay(t, overlay, smokeUinit())
	img, err := os.ReadFile(filepath.Join(outDir, mkimage.InitramfsFile))
	if err != nil {
		t.Fatal(err)
	}
	ov, _ := os.ReadFile(overlay)
	img = append(append(img, make([]byte, (4-len(img)%4)%4)...), ov...)
	kernel := filepath.Join(outDir, mkimage.KernelFile)
	good := packTest(t, filepath.Join(dir, "good.nvrfw"), "1.0.0", kernel, img, keys)
	broken := packTest(t, filepath.Join(dir, "broken.nvrfw"), "1.0.1", kernel, []byte("not an initramfs\n"), keys)
	// The marker is the version line of the nvrd built into the image.
	out, err := exec.Command(filepath.Join(outDir, "build", "nvrd"), "version").Output()
	if err != nil {
		t.Fatalf("nvrd version: %v", err)
	}
	marker := strings.TrimSpace(string(out))

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	boot := filepath.Join(dir, "boot")
	m, err := slots.New(slots.Options{Dir: boot})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Provision(ctx, good, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Install(ctx, broken, slots.A, nil); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	grubBoot := func(tag string, want slots.Slot) *vm {
		t.Helper()
		if out, err := exec.Command("grub/mkdisk.sh", disk, boot, "64").CombinedOutput(); err != nil {
			t.Fatalf("mkdisk.sh: %v\n%s", err, out)
		}
		v := startVM(t, ctx, qemu, []string{"-drive", "file=" + disk + ",format=raw,if=ide"},
			filepath.Join(outDir, "smoke", "grub-"+tag+".log"))
		t.Cleanup(func() { v.stop(t) })
		d := v.waitFor(t, "Booting `nvr firmware, slot "+string(want)+"'", 3*time.Minute)
		t.Logf("GRUB boot %s: slot %s chosen after %v", tag, want, d.Round(time.Millisecond))
		return v
	}
	// syncEnv copies the block GRUB saved on the disk back into the boot dir.
	syncEnv := func() slots.Env {
		t.Helper()
		dst := filepath.Join(boot, slots.EnvFile)
		if out, err := exec.Command("mcopy", "-o", "-n", "-i", disk+"@@1M", "::/"+slots.EnvFile, dst).CombinedOutput(); err != nil {
			t.Fatalf("mcopy grubenv: %v\n%s", err, out)
		}
		env, err := m.Env()
		if err != nil {
			t.Fatal(err)
		}
		return env
	}

	v := grubBoot("1-broken-trial", slots.B)
	v.waitExit(t, 3*time.Minute)
	if c := v.tail(); !strings.Contains(c, "Kernel panic") {
		t.Fatalf("the broken trial did not panic; console:\n%s", c)
	}
	if env := syncEnv(); env.Get(slots.KeyTrial) != "" || env.Get(slots.KeyDefault) != "a" {
		t.Fatalf("after the trial boot GRUB left %s, want the trial cleared", env)
	}

	v = grubBoot("2-fallback", slots.A)
	d := v.waitFor(t, marker, 3*time.Minute)
	t.Logf("GRUB boot 2: nvrd marker after %v", d.Round(time.Millisecond))
	v.waitPoweroff(t, time.Minute)

	syncEnv()
	if _, err := m.Install(ctx, good, slots.A, nil); err != nil {
		t.Fatal(err)
	}
	v = grubBoot("3-good-trial", slots.B)
	d = v.waitFor(t, marker, 3*time.Minute)
	t.Logf("GRUB boot 3: nvrd marker after %v", d.Round(time.Millisecond))
	v.waitPoweroff(t, time.Minute)
	if env := syncEnv(); env.Get(slots.KeyTrial) != "" {
		t.Fatalf("after the good trial GRUB left %s", env)
	}
	if changed, err := m.Confirm(slots.B); err != nil || !changed {
		t.Fatalf("Confirm(b): %v %v", changed, err)
	}
	if s, _ := slots.Decide(syncEnvOrFail(t, m)); s != slots.B {
		t.Fatalf("after Confirm the next boot is %s", s)
	}
}

func syncEnvOrFail(t *testing.T, m *slots.Manager) slots.Env {
	t.Helper()
	env, err := m.Env()
	if err != nil {
		t.Fatal(err)
	}
	return env
}
