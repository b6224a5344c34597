package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/u-root/mkuimage/cpio"

	"github.com/nvrfw/nvr/image/kmod"
	"github.com/nvrfw/nvr/image/mkimage"
)

// Paths relative to this package.
const (
	repoDir     = "../.."
	outDir      = "../../out/image"
	kernelRoot  = "../../out/kernel/root"
	privkeyPath = "../../out/keys/dev.key"
)

// extraModules are loaded at boot by the test overlay on top of the
// image's: configfs, which gpio-sim (built at test time, scenario 2) is
// configured through. Everything else a guest runs (image/appliance as the
// uinit, ext4, mdadm, the trusted firmware key) is in the image itself.
func extraModules() []string { return []string{"configfs"} }

// enabled reports whether the suite must run: make qemu-test sets
// NVR_QEMU_TEST=1 (it boots about a dozen guests, ~10 min on 2 cores, so
// a plain go test ./... does not run it).
func enabled() bool { return os.Getenv("NVR_QEMU_TEST") == "1" }

// env is what every scenario shares: the image and the host tools built
// once per test binary.
type env struct {
	kernel  string // out/image/vmlinux
	initrd  string // the image's initramfs + the test overlay
	overlay string // the overlay alone (appended to other initramfs images)
	nvrd    string // nvrd for the host (camera simulator, bundle tools)
	dir     string // this test binary's build outputs (removed at exit)
	cache   string // builds kept between runs (gpio-sim)
}

// needTool fails under CI and skips otherwise when a tool is missing.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is missing (apt-get install %s; make qemu-test installs it)", name, pkg)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// setup returns the shared environment, building it on first use.
func setup(t *testing.T) *env {
	t.Helper()
	if !enabled() {
		t.Skip("QEMU system tests: set NVR_QEMU_TEST=1 (make qemu-test)")
	}
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	needTool(t, "mkfs.ext4", "e2fsprogs")
	if shared.err != "" {
		t.Fatal(shared.err)
	}
	if shared.env != nil {
		return shared.env
	}
	e, err := build(t)
	if err != nil {
		shared.err = err.Error()
		t.Fatal(err)
	}
	shared.env = e
	return e
}

// shared caches setup's result for the test binary's life (tests run one
// after another).
var shared struct {
	env *env
	err string
	tmp string // removed by TestMain
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.tmp != "" {
		os.RemoveAll(shared.tmp)
	}
	os.Exit(code)
}

func build(t *testing.T) (*env, error) {
	if _, err := os.Stat(filepath.Join(outDir, mkimage.BundleFile)); err != nil {
		t.Logf("no image yet: running make image")
		cmd := exec.Command("make", "-C", repoDir, "image")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("make image: %v\n%s", err, out)
		}
	}
	cache := filepath.Join(outDir, "qemutest", "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "qemutest-")
	if err != nil {
		return nil, err
	}
	shared.tmp = dir
	e := &env{kernel: filepath.Join(outDir, mkimage.VmlinuxFile), dir: dir, cache: cache}
	e.nvrd = filepath.Join(dir, "nvrd-host")
	if err := goBuild(e.nvrd, "./firmware/cmd/nvrd", false); err != nil {
		return nil, err
	}
	agent := filepath.Join(dir, "agent")
	if err := goBuild(agent, "./image/qemutest/agent", true); err != nil {
		return nil, err
	}
	e.overlay = filepath.Join(dir, "overlay.cpio")
	if err := writeOverlay(e.overlay, agent); err != nil {
		return nil, err
	}
	img, err := os.ReadFile(filepath.Join(outDir, mkimage.InitramfsFile))
	if err != nil {
		return nil, err
	}
	e.initrd = filepath.Join(dir, "initrd")
	if err := appendOverlay(e.initrd, img, e.overlay); err != nil {
		return nil, err
	}
	return e, nil
}

// goBuild builds pkg (relative to the repository) into out.
func goBuild(out, pkg string, guest bool) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", abs, pkg)
	cmd.Dir = repoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if guest {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH=amd64")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// appendOverlay writes img followed by the overlay archive; the kernel
// reads a cpio header only at a 4-byte aligned offset and later members
// win.
func appendOverlay(dst string, img []byte, overlay string) error {
	ov, err := os.ReadFile(overlay)
	if err != nil {
		return err
	}
	img = append(img[:len(img):len(img)], make([]byte, (4-len(img)%4)%4)...)
	return os.WriteFile(dst, append(img, ov...), 0o644)
}

// writeOverlay writes the cpio archive the tests append to an image's
// initramfs, with only what is test-only: the test agent
// (/bin/qemutest-agent, started only with nvr.agent=), the extra modules
// and a modules.dep covering them with the image's.
func writeOverlay(path, agent string) error {
	kvers, _ := filepath.Glob(filepath.Join(kernelRoot, "lib", "modules", "*"))
	if len(kvers) != 1 {
		return fmt.Errorf("want one kernel under %s/lib/modules, found %d", kernelRoot, len(kvers))
	}
	modDir := kvers[0]
	kver := filepath.Base(modDir)
	dep, err := kmod.Generate(modDir)
	if err != nil {
		return err
	}
	builtin, err := kmod.ReadBuiltin(modDir)
	if err != nil {
		return err
	}
	all, err := dep.Resolve(append(mkimage.DefaultModules(), extraModules()...), builtin)
	if err != nil {
		return err
	}
	agentBin, err := os.ReadFile(agent)
	if err != nil {
		return err
	}
	inImage := "lib/modules/" + kver + "/"
	recs := []cpio.Record{
		cpio.Directory("bin", 0o755),
		cpio.StaticFile("bin/qemutest-agent", string(agentBin), 0o755),
		cpio.Directory("lib", 0o755),
		cpio.Directory("lib/modules-load.d", 0o755),
		cpio.StaticFile("lib/modules-load.d/qemutest.conf", strings.Join(extraModules(), "\n")+"\n", 0o444),
		cpio.StaticFile(inImage+"modules.dep", string(dep.Subset(all).Marshal()), 0o444),
	}
	dirs := map[string]bool{}
	for _, m := range all {
		for d := filepath.Dir(m); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range sortedKeys(dirs) {
		recs = append(recs, cpio.Directory(inImage+d, 0o755))
	}
	for _, m := range all {
		b, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return err
		}
		recs = append(recs, cpio.StaticFile(inImage+m, string(b), 0o444))
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecords(w, recs); err != nil {
		return err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	// Parents sort before children.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// makeDisk creates an ext4 image of size MiB at path, labelled.
func makeDisk(t *testing.T, path, label string, mib int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(mib) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-L", label, "-E", "lazy_itable_init=0,lazy_journal_init=0", path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", path, err, b)
	}
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// camsim runs the host's camera simulator until the test ends.
func camsim(t *testing.T, e *env, port int, paths ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"camsim", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--no-udp", "--log-level", "warn",
		"--clips", filepath.Join(repoDir, "testdata", "clips")}
	for _, p := range paths {
		args = append(args, "--path", p)
	}
	cmd := exec.CommandContext(ctx, e.nvrd, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("camsim: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("camsim exited: %s", out.Bytes())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("camsim does not listen: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
