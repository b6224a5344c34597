package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/fileflag"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/image/mkimage"
	"github.com/nvrfw/nvr/image/vmlinux"
)

// Paths of make image's outputs, relative to this package.
const (
	outDir    = "../out/image"
	pubkeyRel = "../out/keys/dev.key.pub"
)

// smokeEnabled reports whether the QEMU smoke test must run.
func smokeEnabled() bool {
	return os.Getenv("NVR_QEMU_SMOKE") == "1" || os.Getenv("CI") == "true"
}

// TestQEMUSmoke boots the image twice as the A/B bootloader would: slot a
// after provisioning, then slot b as a one-time trial after Install, which
// is then confirmed. Each boot must print nvrd's version line (the marker,
// with the version and build stamped into the bundle's manifest) and power
// off.
func TestQEMUSmoke(t *testing.T) {
	if !smokeEnabled() {
		t.Skip("QEMU smoke boot: set NVR_QEMU_SMOKE=1 (make qemu-smoke), it runs by itself under CI=true")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 is missing (apt-get install qemu-system-x86; make qemu-smoke does it): %v", err)
	}
	ensureImage(t)
	bundlePath := filepath.Join(outDir, mkimage.BundleFile)
	pubRaw, err := os.ReadFile(pubkeyRel)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bundle.ParsePublicKeys(pubRaw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b, err := bundle.Open(f, st.Size(), bundle.Options{Keys: keys, Board: "qemu"})
	if err != nil {
		t.Fatalf("the built bundle does not verify: %v", err)
	}
	marker := fmt.Sprintf("nvrd %s (build %s)", b.Manifest.Version, b.Manifest.BuildID)

	dir := t.TempDir()
	boot := filepath.Join(dir, "boot")
	m, err := slots.New(slots.Options{Dir: boot})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := m.Provision(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay.cpio")
	writeOverlay(t, overlay, smokeUinit())

	// Boot 1: the provisioned slot a.
	expectHealthy(t, ctx, qemu, m, overlay, dir, marker, slots.A, "1")

	// A signed but broken firmware in b: its trial boot panics, and the
	// next power-on falls back to a by itself.
	broken := packBroken(t, dir, filepath.Join(boot, "a", slots.KernelFile), keys)
	if target, err := m.Install(ctx, broken, slots.A, nil); err != nil || target != slots.B {
		t.Fatalf("Install of the broken bundle: %s, %v", target, err)
	}
	slot, vm := startSlot(t, ctx, qemu, m, overlay, dir, "2")
	if slot != slots.B {
		t.Fatalf("trial boot chose slot %s", slot)
	}
	vm.waitExit(t, 3*time.Minute)
	if c := vm.tail(); !strings.Contains(c, "Kernel panic") || strings.Contains(c, marker) {
		t.Fatalf("the broken trial did not panic; console:\n%s", c)
	}
	vm.stop(t)
	t.Logf("slot b (broken trial) panicked after %v", time.Since(vm.start).Round(time.Millisecond))
	expectHealthy(t, ctx, qemu, m, overlay, dir, marker, slots.A, "3")

	// The good firmware in b: trial boot, then confirm makes b the default.
	if target, err := m.Install(ctx, b, slots.A, nil); err != nil || target != slots.B {
		t.Fatalf("Install: %s, %v", target, err)
	}
	expectHealthy(t, ctx, qemu, m, overlay, dir, marker, slots.B, "4")
	if changed, err := m.Confirm(slots.B); err != nil || !changed {
		t.Fatalf("Confirm(b): %v %v", changed, err)
	}
	if s, _, _ := m.Boot(); s != slots.B {
		t.Fatalf("after confirming b the bootloader picks %s", s)
	}
}

// packBroken signs (with the development key next to the trusted public
// key) a bundle whose initramfs is not one.
func packBroken(t *testing.T, dir, kernel string, keys []ed25519.PublicKey) *bundle.Bundle {
	t.Helper()
	return packTest(t, filepath.Join(dir, "broken.nvrfw"), "0.0.1-broken", kernel, []byte("this is not an initramfs\n"), keys)
}

// packTest signs a bundle of kernel (a file) and initramfs (bytes) with the
// development key next to the trusted public key, and opens it.
func packTest(t *testing.T, path, version, kernel string, initramfs []byte, keys []ed25519.PublicKey) *bundle.Bundle {
	t.Helper()
	raw, err := os.ReadFile(strings.TrimSuffix(pubkeyRel, ".pub"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := bundle.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	_, err = bundle.Pack(out, priv, bundle.Manifest{Version: version, Boards: []string{"qemu"}}, []bundle.Source{
		{Name: bundle.PartKernel, Open: func() (io.ReadCloser, error) { return os.Open(kernel) }},
		{Name: bundle.PartInitramfs, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(initramfs)), nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := out.Stat()
	b, err := bundle.Open(out, st.Size(), bundle.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ensureImage runs make image when out/image has no bundle yet.
func ensureImage(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(outDir, mkimage.BundleFile)); err == nil {
		return
	}
	t.Logf("no image yet: running make image")
	cmd := exec.Command("make", "-C", "..", "image")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
}

// TestImageContents checks the built initramfs: init, the uinit link to
// the appliance, nvrd, the rescue shell, mdadm with its libraries, the
// trusted firmware key (the build's signing key), and the kernel modules
// with their metadata.
func TestImageContents(t *testing.T) {
	if !smokeEnabled() {
		if _, err := os.Stat(filepath.Join(outDir, mkimage.InitramfsFile)); err != nil {
			t.Skip("no image: run make image (or set NVR_QEMU_SMOKE=1 to build it)")
		}
	}
	ensureImage(t)
	f, err := os.Open(filepath.Join(outDir, mkimage.InitramfsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpio.Record{}
	for _, r := range recs {
		files[r.Name] = r
	}
	content := func(name string) string {
		r, ok := files[name]
		if !ok {
			t.Fatalf("initramfs lacks %s", name)
		}
		b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := content("bin/uinit"); got != "appliance" && got != "/"+mkimage.ApplianceBin {
		t.Errorf("bin/uinit -> %q, want /%s", got, mkimage.ApplianceBin)
	}
	if _, ok := files["etc/uinit.flags"]; ok {
		t.Errorf("etc/uinit.flags present: the appliance takes its settings from the kernel command line")
	}
	// The image trusts the key that signed its bundle (make image's key).
	keyRaw, err := os.ReadFile(filepath.Join("..", "out", "keys", "dev.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := bundle.ParsePrivateKey(keyRaw)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := bundle.ParsePublicKeys([]byte(content(mkimage.TrustedKeysFile)))
	if err != nil || len(trusted) != 1 || !trusted[0].Equal(key.Public()) {
		t.Errorf("%s does not hold the signing key's public key (%v)", mkimage.TrustedKeysFile, err)
	}
	for _, name := range []string{"init", "bin/nvrd", mkimage.ApplianceBin, "bin/defaultsh", "bbin/bb", "bbin/ip", "bbin/dmesg",
		"lib/modules-load.d/nvr.conf", "sbin/mdadm", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libudev.so.1"} {
		if _, ok := files[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
	var kos, deps int
	for name, r := range files {
		if r.MTime != 0 {
			t.Errorf("%s has mtime %d: not reproducible", name, r.MTime)
		}
		if strings.HasSuffix(name, ".ko") {
			kos++
		}
		if strings.HasSuffix(name, "/modules.dep") {
			deps++
		}
	}
	conf := content("lib/modules-load.d/nvr.conf")
	for _, m := range []string{"raid456", "i6300esb", "softdog", "e1000e", "igb", "virtio_net", "ext4"} {
		if !strings.Contains(conf, "\n"+m+"\n") {
			t.Errorf("nvr.conf does not load %s", m)
		}
	}
	if kos < len(mkimage.DefaultModules()) || deps != 1 {
		t.Errorf("%d modules and %d modules.dep in the image", kos, deps)
	}
	t.Logf("%d files, %d kernel modules, %d bytes uncompressed", len(files), kos, len(raw))
}

// smokeUinit is nvrd's command line in the smoke boot: "version" (prints
// the marker and exits) unless NVR_SMOKE_UINIT overrides it.
func smokeUinit() []string {
	if s := os.Getenv("NVR_SMOKE_UINIT"); s != "" {
		return strings.Fields(s)
	}
	return []string{"version"}
}

// writeOverlay writes a cpio archive that, appended to the image's
// initramfs, replaces /etc/uinit.flags (nvrd's arguments) and points
// /bin/uinit at smokeuinit (image/internal/smokeuinit, built here), which
// runs /bin/nvrd with them, its output straight on the console, and then
// powers off. Later archive members win. TestImageContents checks the real
// /bin/uinit link to the appliance.
func writeOverlay(t *testing.T, path string, args []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smokeuinit")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./internal/smokeuinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build smokeuinit: %v\n%s", err, out)
	}
	off, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	recs := []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.StaticFile("etc/uinit.flags", fileflag.ArgvToFile(args), 0o444),
		cpio.Directory("bin", 0o755),
		cpio.StaticFile("bin/smokeuinit", string(off), 0o755),
		cpio.Symlink("bin/uinit", "/bin/smokeuinit"),
	}
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startSlot plays the bootloader (slots.Manager.Boot) and boots the chosen
// slot under QEMU with the smoke overlay; tag names the console log.
func startSlot(t *testing.T, ctx context.Context, qemu string, m *slots.Manager, overlay, dir, tag string) (slots.Slot, *vm) {
	t.Helper()
	slot, slotDir, err := m.Boot()
	if err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinux-"+tag)
	if err := vmlinux.Extract(ctx, filepath.Join(slotDir, slots.KernelFile), kernel); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd-"+tag)
	img, err := os.ReadFile(filepath.Join(slotDir, slots.InitramfsFile))
	if err != nil {
		t.Fatal(err)
	}
	ov, err := os.ReadFile(overlay)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel reads a cpio header only at a 4-byte aligned offset and
	// skips zero padding between archives.
	img = append(img, make([]byte, (4-len(img)%4)%4)...)
	if err := os.WriteFile(initrd, append(img, ov...), 0o644); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(outDir, "smoke")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmdline := "console=ttyS0 panic=-1 " + slots.CmdlineKey + "=" + string(slot)
	v := startVM(t, ctx, qemu, []string{"-kernel", kernel, "-initrd", initrd, "-append", cmdline},
		filepath.Join(logDir, "serial-"+tag+"-"+string(slot)+".log"))
	t.Cleanup(func() { v.stop(t) })
	return slot, v
}

// expectHealthy boots, checks the bootloader chose want, waits for user
// space and nvrd's marker, and for the power-off.
func expectHealthy(t *testing.T, ctx context.Context, qemu string, m *slots.Manager, overlay, dir, marker string, want slots.Slot, tag string) {
	t.Helper()
	slot, vm := startSlot(t, ctx, qemu, m, overlay, dir, tag)
	if slot != want {
		t.Fatalf("boot %s: the bootloader chose slot %s, want %s", tag, slot, want)
	}
	userSpace := vm.waitFor(t, "Run /init as init process", 3*time.Minute)
	ready := vm.waitFor(t, marker, 2*time.Minute)
	t.Logf("boot %s, slot %s: user space after %v (kernel clock %ss), nvrd marker after %v", tag, slot,
		userSpace.Round(time.Millisecond), vm.kernelTime("Run /init as init process"), ready.Round(time.Millisecond))
	// The kernel modules init loaded from modules-load.d: none may fail.
	if c := vm.tail(); strings.Contains(c, "can't install") {
		t.Errorf("a kernel module failed to load at boot; console:\n%s", c)
	}
	// nvrd exited; smokeuinit powers off.
	vm.waitPoweroff(t, time.Minute)
	vm.stop(t)
}

// vm is one QEMU run with its serial console on a Unix socket.
type vm struct {
	cmd     *exec.Cmd
	conn    net.Conn
	start   time.Time
	mu      sync.Mutex
	console bytes.Buffer
	found   map[string]time.Duration
	seen    chan struct{} // signalled on every new line
	readers sync.WaitGroup
	exited  chan error
	logPath string
	stopped bool
}

// startVM starts QEMU (software emulation, no reboot, 256 MiB) with
// bootArgs (-kernel... or -drive...) and the serial console on a socket.
func startVM(t *testing.T, ctx context.Context, qemu string, bootArgs []string, logPath string) *vm {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "serial.sock")
	args := append([]string{
		"-nodefaults", "-display", "none", "-no-reboot", "-m", "256",
		"-accel", "tcg", "-cpu", "max",
		"-chardev", "socket,id=ser0,path=" + sock + ",server=on,wait=on",
		"-serial", "chardev:ser0",
	}, bootArgs...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	v := &vm{cmd: cmd, found: map[string]time.Duration{}, seen: make(chan struct{}, 1), exited: make(chan error, 1), logPath: logPath}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() { v.exited <- cmd.Wait() }()
	// QEMU waits for the console client before it starts the VM, so no
	// output is lost.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			v.conn = c
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-v.exited
			t.Fatalf("qemu console socket: %v; qemu stderr: %s", err, stderr.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.start = time.Now()
	v.readers.Add(1)
	go v.read()
	return v
}

func (v *vm) read() {
	defer v.readers.Done()
	sc := bufio.NewScanner(v.conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		v.mu.Lock()
		v.console.Write(sc.Bytes())
		v.console.WriteByte('\n')
		v.mu.Unlock()
		select {
		case v.seen <- struct{}{}:
		default:
		}
	}
}

// waitFor waits up to timeout for s on the console and returns when it
// first appeared after the VM started.
func (v *vm) waitFor(t *testing.T, s string, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		if d, ok := v.found[s]; ok {
			v.mu.Unlock()
			return d
		}
		if bytes.Contains(v.console.Bytes(), []byte(s)) {
			d := time.Since(v.start)
			v.found[s] = d
			v.mu.Unlock()
			return d
		}
		v.mu.Unlock()
		select {
		case <-v.seen:
		case err := <-v.exited:
			v.exited <- err
			v.readers.Wait() // the console is drained once QEMU closed it
			v.mu.Lock()
			ok := bytes.Contains(v.console.Bytes(), []byte(s))
			v.mu.Unlock()
			if ok {
				continue
			}
			t.Fatalf("qemu exited (%v) before %q appeared; console:\n%s", err, s, v.tail())
		case <-deadline.C:
			t.Fatalf("%q did not appear within %v; console:\n%s", s, timeout, v.tail())
		}
	}
}

// waitExit waits for QEMU to exit, whatever the reason, and drains the
// console.
func (v *vm) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-v.exited:
		v.exited <- err
		v.readers.Wait()
	case <-time.After(timeout):
		t.Fatalf("the VM did not stop within %v; console:\n%s", timeout, v.tail())
	}
}

// waitPoweroff waits for the guest to power off (QEMU exits with status 0).
func (v *vm) waitPoweroff(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-v.exited:
		v.exited <- err
		if err != nil {
			t.Fatalf("qemu exited with %v instead of a power-off; console:\n%s", err, v.tail())
		}
		v.readers.Wait()
		if c := v.tail(); strings.Contains(c, "Kernel panic") || !strings.Contains(c, "smokeuinit: nvrd: exit status 0; powering off") {
			t.Fatalf("the guest stopped without nvrd's success and smokeuinit's power-off; console:\n%s", c)
		}
		t.Logf("powered off after %v", time.Since(v.start).Round(time.Millisecond))
	case <-time.After(timeout):
		t.Fatalf("the VM did not power off within %v; console:\n%s", timeout, v.tail())
	}
}

// stop kills QEMU if still running, joins the reader and keeps the
// console log.
func (v *vm) stop(t *testing.T) {
	if v.stopped {
		return
	}
	v.stopped = true
	select {
	case err := <-v.exited:
		v.exited <- err
	default:
		v.cmd.Process.Kill()
	}
	err := <-v.exited
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Errorf("qemu: %v", err)
	}
	v.conn.Close()
	v.readers.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	os.WriteFile(v.logPath, v.console.Bytes(), 0o644)
}

// kernelTime returns the kernel's timestamp ("[    2.98]") of the first
// console line containing s, or "?".
func (v *vm) kernelTime(s string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, line := range strings.Split(v.console.String(), "\n") {
		if strings.Contains(line, s) && strings.HasPrefix(line, "[") {
			if ts, _, ok := strings.Cut(line[1:], "]"); ok {
				return strings.TrimSpace(ts)
			}
		}
	}
	return "?"
}

func (v *vm) tail() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.console.Bytes()
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
