package mkimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/image/kmod"
	"github.com/nvrfw/nvr/image/vmlinux"
)

// DefaultModules are the kernel modules in the image: watchdogs, I2C
// (PMBus power supplies, the I2C stub for tests), md RAID (crc32c_generic is
// libcrc32c's soft dependency, needed by raid456), ext4 (the config and
// recording volumes), virtio for QEMU, and the Intel NICs of the supported
// boards.
func DefaultModules() []string {
	return []string{
		"i6300esb", "softdog", "i2c-dev", "i2c-stub", "i2c-i801",
		"md_mod", "raid1", "crc32c_generic", "raid456", "ext4",
		"virtio_pci", "virtio_blk", "virtio_net",
		"e1000", "e1000e", "igb",
	}
}

// DefaultNoAutoload are modules included but not loaded at boot: i2c-stub
// needs a chip_addr= parameter from whoever uses it.
func DefaultNoAutoload() []string { return []string{"i2c-stub"} }

// DefaultCommands are the u-root commands (cmds/core/NAME) in the image:
// init, the rescue shell and tools.
func DefaultCommands() []string {
	return []string{
		"init", "gosh", "ls", "cat", "dmesg", "ip", "mount", "umount", "ps",
		"shutdown", "poweroff", "free", "df", "mkdir", "rm", "cp", "mv", "ln",
		"echo", "uname", "sync", "insmod", "lsmod", "rmmod", "hexdump", "grep",
		"sleep", "kill", "pci", "wget", "dd",
	}
}

// Paths inside the image.
const (
	// ApplianceBin is image/appliance, u-root's uinit (/bin/uinit links to
	// it): it mounts the volumes and execs nvrd (see its doc).
	ApplianceBin = "bin/appliance"
	// TrustedKeysFile holds the public keys bundles must be signed with: the
	// build's signing key (Options.KeyFile).
	TrustedKeysFile = "etc/nvr/firmware.pub"
)

// Output file names in OutDir.
const (
	KernelFile    = "vmlinuz"
	VmlinuxFile   = "vmlinux"
	InitramfsFile = "initramfs.cpio.gz"
	BundleFile    = "bundle.nvrfw"
)

// Options describes one image build. Fields marked required have no
// default.
type Options struct {
	// KernelRoot is the unpacked Debian linux-image package: it must hold
	// exactly one boot/vmlinuz-KVER and lib/modules/KVER. Required.
	KernelRoot string
	// OutDir receives vmlinuz, vmlinux, initramfs.cpio.gz, bundle.nvrfw.
	// Required.
	OutDir string
	// WorkDir holds intermediate files; default OutDir/build.
	WorkDir string
	// RepoDir is the root of the nvr module (nvrd is built from it); default
	// the current directory.
	RepoDir string
	// RescueDir is the module pinning the u-root commands; default
	// RepoDir/image/rescue.
	RescueDir string
	// Version is the firmware version (semver-like). Required.
	Version string
	// BuildID is the build identity (source revision). Required.
	BuildID string
	// Boards are the board models the bundle fits. Required.
	Boards []string
	// MinVersion is the bundle's minimum version to upgrade from; default
	// none.
	MinVersion string
	// KeyFile is the ed25519 signing key (nvrd firmware keygen). Required.
	// The bundle is signed with it and the image trusts its public key
	// (TrustedKeysFile), so the image accepts the bundles of its own build.
	KeyFile string
	// UserlandRoot is an unpacked Debian amd64 root (image/fetch-userland.sh)
	// holding Programs and the shared libraries they need. Required.
	UserlandRoot string
	// Programs are the dynamically linked programs (paths inside
	// UserlandRoot) the image carries with their libraries and loader;
	// default DefaultPrograms().
	Programs []string
	// Modules are the kernel modules in the image, loaded at boot unless
	// listed in NoAutoload; default DefaultModules().
	Modules []string
	// NoAutoload are modules of Modules not loaded at boot; default
	// DefaultNoAutoload().
	NoAutoload []string
	// Commands are u-root core commands to include; default
	// DefaultCommands() (which must include init and gosh).
	Commands []string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Result names the files a build wrote and their SHA-256s.
type Result struct {
	KernelVersion string
	Files         map[string]string // path -> hex SHA-256
	Modules       []string          // module paths included, load order
}

func (o *Options) setDefaults() error {
	switch {
	case o.KernelRoot == "", o.OutDir == "", o.Version == "", o.BuildID == "", len(o.Boards) == 0, o.KeyFile == "", o.UserlandRoot == "":
		return errors.New("mkimage: KernelRoot, OutDir, Version, BuildID, Boards, KeyFile and UserlandRoot are required")
	}
	if _, err := bundle.ParseVersion(o.Version); err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(o.OutDir, "build")
	}
	if o.RepoDir == "" {
		o.RepoDir = "."
	}
	if o.RescueDir == "" {
		o.RescueDir = filepath.Join(o.RepoDir, "image", "rescue")
	}
	if o.Modules == nil {
		o.Modules = DefaultModules()
	}
	if o.NoAutoload == nil {
		o.NoAutoload = DefaultNoAutoload()
	}
	if o.Commands == nil {
		o.Commands = DefaultCommands()
	}
	if o.Programs == nil {
		o.Programs = DefaultPrograms()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range []*string{&o.KernelRoot, &o.OutDir, &o.WorkDir, &o.RepoDir, &o.RescueDir, &o.UserlandRoot} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("mkimage: %w", err)
		}
		*p = abs
	}
	return nil
}

// Build builds the image described by opts.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if err := os.RemoveAll(opts.WorkDir); err != nil {
		return nil, fmt.Errorf("mkimage: clean work dir: %w", err)
	}
	for _, d := range []string{opts.OutDir, opts.WorkDir, filepath.Join(opts.WorkDir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("mkimage: %w", err)
		}
	}
	kver, vmlinuz, err := findKernel(opts.KernelRoot)
	if err != nil {
		return nil, err
	}
	res := &Result{KernelVersion: kver, Files: map[string]string{}}
	log.Info("kernel", "version", kver)
	if err := copyFile(vmlinuz, filepath.Join(opts.OutDir, KernelFile)); err != nil {
		return nil, err
	}
	if err := vmlinux.Extract(ctx, vmlinuz, filepath.Join(opts.OutDir, VmlinuxFile)); err != nil {
		return nil, err
	}
	nvrd := filepath.Join(opts.WorkDir, "nvrd")
	log.Info("building nvrd", "version", opts.Version, "build", opts.BuildID)
	if err := buildNvrd(ctx, opts, nvrd); err != nil {
		return nil, err
	}
	appliance := filepath.Join(opts.WorkDir, "appliance")
	if err := goBuild(ctx, opts, "./image/appliance", "", appliance); err != nil {
		return nil, err
	}
	files, mods, err := moduleFiles(opts, kver)
	if err != nil {
		return nil, err
	}
	res.Modules = mods
	progs, err := programFiles(opts.UserlandRoot, opts.Programs)
	if err != nil {
		return nil, err
	}
	pub := filepath.Join(opts.WorkDir, "firmware.pub")
	if err := writeTrustedKey(opts.KeyFile, pub); err != nil {
		return nil, err
	}
	files = append(files, progs...)
	files = append(files, nvrd+":bin/nvrd", appliance+":"+ApplianceBin, pub+":"+TrustedKeysFile)
	log.Info("building initramfs", "commands", len(opts.Commands), "modules", len(mods))
	cpioPath := filepath.Join(opts.WorkDir, "initramfs.cpio")
	if err := buildInitramfs(opts, files, cpioPath); err != nil {
		return nil, err
	}
	initramfs := filepath.Join(opts.OutDir, InitramfsFile)
	if err := gzipFile(cpioPath, initramfs); err != nil {
		return nil, err
	}
	log.Info("packing bundle")
	if err := packBundle(opts, filepath.Join(opts.OutDir, KernelFile), initramfs, filepath.Join(opts.OutDir, BundleFile)); err != nil {
		return nil, err
	}
	for _, f := range []string{KernelFile, VmlinuxFile, InitramfsFile, BundleFile} {
		p := filepath.Join(opts.OutDir, f)
		sum, err := fileSHA256(p)
		if err != nil {
			return nil, err
		}
		res.Files[p] = sum
	}
	return res, nil
}

// findKernel returns the kernel version and vmlinuz path of an unpacked
// linux-image package.
func findKernel(root string) (string, string, error) {
	m, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return "", "", fmt.Errorf("mkimage: want exactly one boot/vmlinuz-* in %s, found %d (run image/fetch-kernel.sh)", root, len(m))
	}
	kver := strings.TrimPrefix(filepath.Base(m[0]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(root, "lib", "modules", kver)); err != nil {
		return "", "", fmt.Errorf("mkimage: modules of kernel %s: %w", kver, err)
	}
	return kver, m[0], nil
}

func buildNvrd(ctx context.Context, opts Options, out string) error {
	ldflags := fmt.Sprintf("-X main.version=%s -X main.buildID=%s", opts.Version, opts.BuildID)
	return goBuild(ctx, opts, "./firmware/cmd/nvrd", ldflags, out)
}

// goBuild builds pkg of the repository for the appliance (linux/amd64, no
// cgo, stripped, reproducible) into out.
func goBuild(ctx context.Context, opts Options, pkg, ldflags, out string) error {
	ldflags = strings.TrimSpace("-s -w " + ldflags)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = opts.RepoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkimage: build %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

// moduleFiles resolves opts.Modules and writes the module metadata the
// image needs; it returns mkuimage file specs ("host:archive") and the
// module paths in load order.
func moduleFiles(opts Options, kver string) ([]string, []string, error) {
	modDir := filepath.Join(opts.KernelRoot, "lib", "modules", kver)
	var dep kmod.Dep
	if f, err := os.Open(filepath.Join(modDir, "modules.dep")); err == nil {
		dep, err = kmod.ParseDep(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	} else {
		if dep, err = kmod.Generate(modDir); err != nil {
			return nil, nil, err
		}
	}
	builtin, err := kmod.ReadBuiltin(modDir)
	if err != nil {
		return nil, nil, err
	}
	mods, err := dep.Resolve(opts.Modules, builtin)
	if err != nil {
		return nil, nil, fmt.Errorf("mkimage: %w", err)
	}
	inImage := "lib/modules/" + kver + "/"
	var files []string
	for _, m := range mods {
		files = append(files, filepath.Join(modDir, m)+":"+inImage+m)
	}
	meta := filepath.Join(opts.WorkDir, "modules")
	if err := os.MkdirAll(meta, 0o755); err != nil {
		return nil, nil, fmt.Errorf("mkimage: %w", err)
	}
	names := make([]string, 0, len(opts.Modules))
	for _, n := range opts.Modules {
		if !builtin[strings.ReplaceAll(n, "-", "_")] && !slices.Contains(opts.NoAutoload, n) {
			names = append(names, n)
		}
	}
	gen := map[string][]byte{
		"modules.dep": dep.Subset(mods).Marshal(),
		"nvr.conf":    []byte("# Kernel modules nvrd needs, loaded by u-root's init (written by image/mkimage).\n" + strings.Join(names, "\n") + "\n"),
	}
	for name, b := range gen {
		if err := os.WriteFile(filepath.Join(meta, name), b, 0o644); err != nil {
			return nil, nil, fmt.Errorf("mkimage: %w", err)
		}
	}
	files = append(files,
		filepath.Join(meta, "modules.dep")+":"+inImage+"modules.dep",
		filepath.Join(modDir, "modules.builtin")+":"+inImage+"modules.builtin",
		filepath.Join(meta, "nvr.conf")+":lib/modules-load.d/nvr.conf",
	)
	sort.Strings(files)
	return files, mods, nil
}

func buildInitramfs(opts Options, files []string, out string) error {
	env := golang.Default(
		golang.DisableCGO(),
		golang.WithGOOS("linux"),
		golang.WithGOARCH("amd64"),
		golang.WithWorkingDir(opts.RescueDir),
		golang.WithMod(golang.ModReadonly),
	)
	cmds := make([]string, len(opts.Commands))
	for i, c := range opts.Commands {
		cmds[i] = "github.com/u-root/u-root/cmds/core/" + c
	}
	log := opts.Logger
	l := llog.New(slog.LevelInfo, func(format string, v ...any) { log.Debug(fmt.Sprintf(format, v...)) })
	o, err := uimage.OptionsFor(
		uimage.WithReplaceEnv(env),
		uimage.WithBusyboxCommands(cmds...),
		uimage.WithInit("init"),
		uimage.WithUinit("/"+ApplianceBin),
		uimage.WithShell("gosh"),
		uimage.WithFiles(files...),
		uimage.WithSkipLDD(),
		uimage.WithTempDir(filepath.Join(opts.WorkDir, "tmp")),
		uimage.WithCPIOOutput(out),
	)
	if err != nil {
		return fmt.Errorf("mkimage: initramfs options: %w", err)
	}
	if err := o.Create(l); err != nil {
		return fmt.Errorf("mkimage: build initramfs: %w", err)
	}
	return nil
}

// gzipFile compresses src into dst reproducibly (no name, zero time).
func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	defer in.Close()
	return writeAtomic(dst, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, in); err != nil {
			return err
		}
		return zw.Close()
	})
}

// writeTrustedKey writes the public key of the signing key in keyFile to
// out (PEM, as nvrd firmware verify --pubkey reads it).
func writeTrustedKey(keyFile, out string) error {
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("mkimage: signing key: %w", err)
	}
	key, err := bundle.ParsePrivateKey(raw)
	if err != nil {
		return fmt.Errorf("mkimage: signing key %s: %w", keyFile, err)
	}
	pem, err := bundle.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return fmt.Errorf("mkimage: public key: %w", err)
	}
	if err := os.WriteFile(out, pem, 0o644); err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	return nil
}

func packBundle(opts Options, kernel, initramfs, out string) error {
	raw, err := os.ReadFile(opts.KeyFile)
	if err != nil {
		return fmt.Errorf("mkimage: signing key: %w", err)
	}
	key, err := bundle.ParsePrivateKey(raw)
	if err != nil {
		return fmt.Errorf("mkimage: signing key %s: %w", opts.KeyFile, err)
	}
	src := func(name, p string) bundle.Source {
		return bundle.Source{Name: name, Open: func() (io.ReadCloser, error) { return os.Open(p) }}
	}
	return writeAtomic(out, func(w io.Writer) error {
		_, err := bundle.Pack(w, key, bundle.Manifest{
			Version: opts.Version, MinVersion: opts.MinVersion, Boards: opts.Boards, BuildID: opts.BuildID,
		}, []bundle.Source{src(bundle.PartKernel, kernel), src(bundle.PartInitramfs, initramfs)})
		return err
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	defer in.Close()
	return writeAtomic(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// writeAtomic writes path through path.tmp and a rename.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("mkimage: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mkimage: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("mkimage: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("mkimage: hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
