package mkimage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	full := Options{KernelRoot: "k", OutDir: "o", Version: "1.0.0", BuildID: "b", Boards: []string{"x"}, KeyFile: "key", UserlandRoot: "u"}
	tests := []struct {
		name string
		mod  func(o *Options)
		ok   bool
	}{
		{"complete", func(*Options) {}, true},
		{"no kernel", func(o *Options) { o.KernelRoot = "" }, false},
		{"no boards", func(o *Options) { o.Boards = nil }, false},
		{"no key", func(o *Options) { o.KeyFile = "" }, false},
		{"no userland", func(o *Options) { o.UserlandRoot = "" }, false},
		{"git hash as version", func(o *Options) { o.Version = "38a2003" }, false},
	}
	for _, tt := range tests {
		o := full
		tt.mod(&o)
		err := o.setDefaults()
		if (err == nil) != tt.ok {
			t.Errorf("%s: setDefaults = %v", tt.name, err)
		}
		if err == nil && (o.WorkDir != filepath.Join(o.OutDir, "build") || len(o.Modules) == 0 || len(o.Programs) == 0 || o.Logger == nil) {
			t.Errorf("%s: defaults not applied: %+v", tt.name, o)
		}
	}
}

func TestModuleFiles(t *testing.T) {
	root := t.TempDir()
	mods := filepath.Join(root, "lib", "modules", "6.1.0-test")
	for _, p := range []string{"kernel/md/md-mod.ko", "kernel/md/raid1.ko", "kernel/i2c/i2c-stub.ko", "kernel/w/softdog.ko"} {
		os.MkdirAll(filepath.Dir(filepath.Join(mods, p)), 0o755)
		os.WriteFile(filepath.Join(mods, p), []byte("ko"), 0o644)
	}
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/md/md-mod.ko:\nkernel/md/raid1.ko: kernel/md/md-mod.ko\nkernel/i2c/i2c-stub.ko:\nkernel/w/softdog.ko:\n"), 0o644)
	os.WriteFile(filepath.Join(mods, "modules.builtin"), []byte("kernel/virtio/virtio_pci.ko\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.WriteFile(filepath.Join(root, "boot", "vmlinuz-6.1.0-test"), []byte("k"), 0o644)

	o := Options{KernelRoot: root, OutDir: t.TempDir(), Version: "1.0.0", BuildID: "b", Boards: []string{"x"}, KeyFile: "k", UserlandRoot: "u",
		Modules: []string{"raid1", "i2c-stub", "virtio_pci", "softdog"}}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(o.WorkDir, 0o755)
	kver, _, err := findKernel(root)
	if err != nil || kver != "6.1.0-test" {
		t.Fatalf("findKernel: %q %v", kver, err)
	}
	files, order, err := moduleFiles(o, kver)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, " "); got != "kernel/md/md-mod.ko kernel/md/raid1.ko kernel/i2c/i2c-stub.ko kernel/w/softdog.ko" {
		t.Fatalf("load order %q", got)
	}
	joined := strings.Join(files, "\n")
	for _, want := range []string{
		":lib/modules/6.1.0-test/kernel/md/md-mod.ko",
		":lib/modules/6.1.0-test/modules.dep",
		":lib/modules/6.1.0-test/modules.builtin",
		":lib/modules-load.d/nvr.conf",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("files lack %q:\n%s", want, joined)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(o.WorkDir, "modules", "nvr.conf"))
	if c := string(conf); !strings.Contains(c, "\nraid1\nsoftdog\n") || strings.Contains(c, "i2c-stub") || strings.Contains(c, "virtio_pci") {
		t.Fatalf("nvr.conf loads the wrong modules:\n%s", c)
	}
	o.Modules = []string{"nosuch"}
	if _, _, err := moduleFiles(o, kver); err == nil {
		t.Fatal("an unknown module was accepted")
	}
}

// TestReproducible builds the image twice from a snapshot of HEAD (git
// archive, so concurrent edits of the tree cannot interfere) and compares
// the outputs. It needs the fetched kernel and takes minutes:
// NVR_IMAGE_REPRO=1 enables it.
func TestReproducible(t *testing.T) {
	if os.Getenv("NVR_IMAGE_REPRO") != "1" {
		t.Skip("slow (two image builds): set NVR_IMAGE_REPRO=1 after make image")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	cmd := exec.Command("sh", "-c", "git -C "+repo+" archive HEAD | tar -x -C "+src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out)
	}
	var sums []map[string]string
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "image")
		res, err := Build(context.Background(), Options{
			KernelRoot: filepath.Join(repo, "out", "kernel", "root"), OutDir: out, RepoDir: src,
			Version: "1.0.0", BuildID: "repro", Boards: []string{"qemu"}, KeyFile: filepath.Join(repo, "out", "keys", "dev.key"),
			UserlandRoot: filepath.Join(repo, "out", "userland", "root"),
		})
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]string{}
		for p, sum := range res.Files {
			byName[filepath.Base(p)] = sum
		}
		sums = append(sums, byName)
	}
	for name, sum := range sums[0] {
		if sums[1][name] != sum {
			t.Errorf("%s differs between two builds: %s vs %s", name, sum, sums[1][name])
		} else {
			t.Logf("%s  %s", sum, name)
		}
	}
}
