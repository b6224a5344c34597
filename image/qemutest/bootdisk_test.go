package qemutest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/image/vmlinux"
)

// bootDisk is the appliance's boot disk (grubenv and the A/B slots) as the
// harness plays the bootloader on it: the disk's files live in a host
// directory between boots; before a boot the bootloader's decision
// (slots.Manager.Boot, the rules of image/grub/grub.cfg) is applied there
// and an ext4 image is made of it (mkfs.ext4 -d); after the VM stops, the
// image's files (written by nvrd in the guest: install, confirm) are read
// back with debugfs.
type bootDisk struct {
	t   *testing.T
	e   *env
	dir string // the files
	img string
	m   *slots.Manager
}

func newBootDisk(t *testing.T, e *env) *bootDisk {
	t.Helper()
	d := &bootDisk{t: t, e: e, dir: filepath.Join(t.TempDir(), "boot"), img: filepath.Join(t.TempDir(), "boot.img")}
	m, err := slots.New(slots.Options{Dir: d.dir})
	if err != nil {
		t.Fatal(err)
	}
	d.m = m
	return d
}

// boot decides the slot and returns it with the kernel and initrd to boot
// (the slot's initramfs with the test overlay), and makes the disk image.
func (d *bootDisk) boot(ctx context.Context) (slots.Slot, string, string) {
	t := d.t
	t.Helper()
	slot, slotDir, err := d.m.Boot()
	if err != nil {
		t.Fatal(err)
	}
	kernel := d.vmlinux(ctx, filepath.Join(slotDir, slots.KernelFile))
	img, err := os.ReadFile(filepath.Join(slotDir, slots.InitramfsFile))
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd")
	if err := appendOverlay(initrd, img, d.e.overlay); err != nil {
		t.Fatal(err)
	}
	os.Remove(d.img)
	makeDiskFrom(t, d.img, "boot", 160, d.dir)
	return slot, kernel, initrd
}

// vmlinux extracts (once per kernel) the uncompressed kernel QEMU boots.
func (d *bootDisk) vmlinux(ctx context.Context, vmlinuz string) string {
	d.t.Helper()
	f, err := os.Open(vmlinuz)
	if err != nil {
		d.t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		d.t.Fatal(err)
	}
	out := filepath.Join(d.e.cache, "vmlinux-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if err := vmlinux.Extract(ctx, vmlinuz, out); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// readBack replaces the host directory with the disk image's files.
func (d *bootDisk) readBack() {
	t := d.t
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "rdump")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("debugfs", "-R", "rdump / "+tmp, d.img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs rdump: %v\n%s", err, b)
	}
	os.RemoveAll(filepath.Join(tmp, "lost+found"))
	if err := os.RemoveAll(d.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.dir); err != nil {
		t.Fatal(err)
	}
}

// status reads the slots as the bootloader sees them.
func (d *bootDisk) status(booted slots.Slot) slots.Status {
	d.t.Helper()
	st, err := d.m.Status(booted)
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// makeDiskFrom creates an ext4 image of size MiB holding dir's files.
func makeDiskFrom(t *testing.T, path, label string, mib int, dir string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(mib) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", label, "-d", dir, path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d %s: %v\n%s", dir, err, b)
	}
}

// updateDisk makes a disk holding bundle.nvrfw (the update stick).
func updateDisk(t *testing.T, bundlePath string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "update")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bundle.nvrfw"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "update.img")
	makeDiskFrom(t, img, "update", 64, dir)
	return img
}

// packBundle signs a bundle of the image's kernel and initramfs (or the
// given initramfs bytes) with key.
func packBundle(t *testing.T, path string, key ed25519.PrivateKey, man bundle.Manifest, initramfs []byte) {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	initSrc := bundle.Source{Name: bundle.PartInitramfs, Open: func() (io.ReadCloser, error) {
		return os.Open(filepath.Join(outDir, "initramfs.cpio.gz"))
	}}
	if initramfs != nil {
		initSrc.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytesReader(initramfs)), nil }
	}
	_, err = bundle.Pack(out, key, man, []bundle.Source{
		{Name: bundle.PartKernel, Open: func() (io.ReadCloser, error) { return os.Open(filepath.Join(outDir, "vmlinuz")) }},
		initSrc,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// devKey is the development signing key make image uses.
func devKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(privkeyPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := bundle.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openBundle opens a bundle file trusting the development key.
func openBundle(t *testing.T, path string) *bundle.Bundle {
	t.Helper()
	keys := []ed25519.PublicKey{devKey(t).Public().(ed25519.PublicKey)}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	b, err := bundle.Open(f, st.Size(), bundle.Options{Keys: keys, Board: "qemu"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
