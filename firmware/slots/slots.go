package slots

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/ringstore/vfs"
)

// File names inside the boot directory.
const (
	// EnvFile is the GRUB environment block, at the root of the boot dir.
	EnvFile = "grubenv"
	// KernelFile, InitramfsFile and ManifestFile are inside a slot's
	// directory (DIR/a, DIR/b). The manifest is written last: a slot without
	// one is incomplete.
	KernelFile    = "vmlinuz"
	InitramfsFile = "initramfs.cpio.gz"
	ManifestFile  = "manifest.json"
)

// Errors a caller acts on.
var (
	// ErrNoEnv: the boot directory has no environment block (not
	// provisioned).
	ErrNoEnv = errors.New("slots: no GRUB environment block")
	// ErrProvisioned: Provision found an environment block already.
	ErrProvisioned = errors.New("slots: boot directory already provisioned")
	// ErrUnconfirmed: the running slot is a trial not yet confirmed;
	// installing now would overwrite the only known-good slot.
	ErrUnconfirmed = errors.New("slots: running slot is an unconfirmed trial")
	// ErrBundle: the bundle lacks a part the slot needs, or a part's bytes
	// changed since the bundle was verified.
	ErrBundle = errors.New("slots: unusable bundle")
)

// Options configures a Manager.
type Options struct {
	// Dir is the boot directory holding EnvFile and the slot directories
	// "a" and "b" (on the appliance: the mounted boot partition). Required.
	Dir string
	// FS is the file system. Nil means vfs.Default (the OS).
	FS vfs.FS
}

// Progress reports an install's advance to the callback given to Install.
type Progress struct {
	// Slot is the slot being written.
	Slot Slot
	// Step is "disarm", "kernel", "initramfs", "manifest", "arm" or "done".
	Step string
	// Done and Total count the bytes of the current step's file.
	Done, Total int64
}

// Status describes the slots as the running system sees them.
type Status struct {
	// Booted is the running slot (from the kernel command line).
	Booted Slot
	// Default is the confirmed slot the bootloader boots by default.
	Default Slot
	// Trial is the slot armed for one trial boot, or "".
	Trial Slot
	// Versions holds each complete slot's firmware version.
	Versions map[Slot]string
}

// Manager installs bundles into the inactive slot and confirms trial boots.
// Its methods are safe for concurrent use (they are serialised); only one
// Manager may own a boot directory.
type Manager struct {
	dir string
	fs  vfs.FS
	mu  sync.Mutex
}

// New returns a Manager of the boot directory opts.Dir.
func New(opts Options) (*Manager, error) {
	if opts.Dir == "" {
		return nil, errors.New("slots: Options.Dir is required")
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	return &Manager{dir: opts.Dir, fs: opts.FS}, nil
}

// Env reads the environment block.
func (m *Manager) Env() (Env, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readEnv()
}

func (m *Manager) readEnv() (Env, error) {
	b, err := m.readFile(filepath.Join(m.dir, EnvFile), EnvSize+1)
	if errors.Is(err, os.ErrNotExist) {
		return Env{}, fmt.Errorf("%w in %s", ErrNoEnv, m.dir)
	}
	if err != nil {
		return Env{}, fmt.Errorf("slots: read environment block: %w", err)
	}
	env, err := ParseEnv(b)
	if err != nil {
		return Env{}, fmt.Errorf("slots: %s: %w", filepath.Join(m.dir, EnvFile), err)
	}
	return env, nil
}

// writeEnv replaces the environment block atomically: tmp file, fsync,
// rename, fsync of the directory.
func (m *Manager) writeEnv(env Env) error {
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	if err := m.writeAtomic(filepath.Join(m.dir, EnvFile), bytes.NewReader(b), int64(len(b)), "", nil); err != nil {
		return fmt.Errorf("slots: write environment block: %w", err)
	}
	return nil
}

// Provision writes bundle b into slot A of an empty boot directory and
// creates the environment block with A as the default (factory install, or
// the image builder). It refuses a directory that has a block already.
func (m *Manager) Provision(ctx context.Context, b *bundle.Bundle, progress func(Progress)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.readEnv(); err == nil {
		return ErrProvisioned
	} else if !errors.Is(err, ErrNoEnv) {
		return err
	}
	if err := m.writeSlot(ctx, A, b, progress); err != nil {
		return err
	}
	return m.writeEnv(Env{}.Set(KeyDefault, string(A)).Set(KeyTrial, ""))
}

// Install writes bundle b (already verified with bundle.Open) into the slot
// that is not booted, then arms it for one trial boot. It returns the slot
// written. It refuses to run while the booted slot is an unconfirmed trial
// (ErrUnconfirmed). Every step is power-cut safe: until the final
// environment write, the bootloader boots the booted slot. See doc.go for
// the protocol.
func (m *Manager) Install(ctx context.Context, b *bundle.Bundle, booted Slot, progress func(Progress)) (Slot, error) {
	if !booted.Valid() {
		return "", fmt.Errorf("slots: booted slot %q is not a or b", booted)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	env, err := m.readEnv()
	if err != nil {
		return "", err
	}
	if def, _ := Decide(env.Set(KeyTrial, "")); def != booted {
		return "", fmt.Errorf("%w: booted %s, default %s: confirm it first", ErrUnconfirmed, booted, def)
	}
	target := booted.Other()
	if Slot(env.Get(KeyTrial)) == target {
		// A previous install armed the target but was not booted: disarm it
		// before its files change.
		report(progress, Progress{Slot: target, Step: "disarm"})
		env = env.Set(KeyTrial, "")
		if err := m.writeEnv(env); err != nil {
			return "", err
		}
	}
	if err := m.writeSlot(ctx, target, b, progress); err != nil {
		return "", err
	}
	report(progress, Progress{Slot: target, Step: "arm"})
	if err := m.writeEnv(env.Set(KeyTrial, string(target))); err != nil {
		return "", err
	}
	report(progress, Progress{Slot: target, Step: "done"})
	return target, nil
}

// Confirm makes the booted slot the default once the system is healthy; the
// caller invokes it after a trial boot proved itself (store open, cameras
// recording, watchdog petted). It reports whether the environment changed
// (false when booted already is the default).
func (m *Manager) Confirm(booted Slot) (bool, error) {
	if !booted.Valid() {
		return false, fmt.Errorf("slots: booted slot %q is not a or b", booted)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	env, err := m.readEnv()
	if err != nil {
		return false, err
	}
	next := env
	if Slot(env.Get(KeyDefault)) != booted {
		next = next.Set(KeyDefault, string(booted))
	}
	if Slot(env.Get(KeyTrial)) == booted {
		next = next.Set(KeyTrial, "")
	}
	if next.Equal(env) {
		return false, nil
	}
	if _, err := m.manifest(booted); err != nil {
		return false, fmt.Errorf("slots: refusing to confirm slot %s without a manifest: %w", booted, err)
	}
	return true, m.writeEnv(next)
}

// Boot plays the bootloader at power-on (for a QEMU harness or a bootloader
// without a script): it applies Decide to the environment block, saves the
// new block when Decide changed it (before the slot is booted, like
// grub.cfg), and returns the slot to boot with its directory.
func (m *Manager) Boot() (Slot, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	env, err := m.readEnv()
	if err != nil {
		return "", "", err
	}
	s, next := Decide(env)
	if !next.Equal(env) {
		if err := m.writeEnv(next); err != nil {
			return "", "", err
		}
	}
	return s, filepath.Join(m.dir, string(s)), nil
}

// Status reads the environment and the slots' manifests.
func (m *Manager) Status(booted Slot) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	env, err := m.readEnv()
	if err != nil {
		return Status{}, err
	}
	def, _ := Decide(env.Set(KeyTrial, ""))
	st := Status{Booted: booted, Default: def, Versions: map[Slot]string{}}
	if t := Slot(env.Get(KeyTrial)); t.Valid() {
		st.Trial = t
	}
	for _, s := range []Slot{A, B} {
		if man, err := m.manifest(s); err == nil {
			st.Versions[s] = man.Version
		}
	}
	return st, nil
}

func (m *Manager) manifest(s Slot) (bundle.Manifest, error) {
	var man bundle.Manifest
	b, err := m.readFile(filepath.Join(m.dir, string(s), ManifestFile), bundle.MaxManifestSize)
	if err != nil {
		return man, err
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return man, fmt.Errorf("slots: slot %s manifest: %w", s, err)
	}
	return man, nil
}

// writeSlot replaces slot s's files with b's parts: manifest removed first,
// parts written each to a tmp file, synced and renamed, manifest last.
func (m *Manager) writeSlot(ctx context.Context, s Slot, b *bundle.Bundle, progress func(Progress)) error {
	dir := filepath.Join(m.dir, string(s))
	if err := m.fs.MkdirAll(dir); err != nil {
		return fmt.Errorf("slots: create slot %s: %w", s, err)
	}
	man := filepath.Join(dir, ManifestFile)
	if ok, err := m.fs.Exists(man); err != nil {
		return fmt.Errorf("slots: slot %s: %w", s, err)
	} else if ok {
		if err := m.fs.Remove(man); err != nil {
			return fmt.Errorf("slots: invalidate slot %s: %w", s, err)
		}
		if err := m.fs.SyncDir(dir); err != nil {
			return fmt.Errorf("slots: invalidate slot %s: %w", s, err)
		}
	}
	for _, f := range []struct{ part, file string }{{bundle.PartKernel, KernelFile}, {bundle.PartInitramfs, InitramfsFile}} {
		r, p, err := b.Part(f.part)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBundle, err)
		}
		step := func(done int64) {
			report(progress, Progress{Slot: s, Step: f.part, Done: done, Total: p.Size})
		}
		err = m.writeAtomic(filepath.Join(dir, f.file), &ctxReader{ctx: ctx, r: r}, p.Size, p.SHA256, step)
		if err != nil {
			return fmt.Errorf("slots: write %s of slot %s: %w", f.part, s, err)
		}
	}
	raw, err := json.MarshalIndent(b.Manifest, "", "  ")
	if err != nil {
		return fmt.Errorf("slots: encode manifest: %w", err)
	}
	report(progress, Progress{Slot: s, Step: "manifest", Total: int64(len(raw))})
	if err := m.writeAtomic(man, bytes.NewReader(raw), int64(len(raw)), "", nil); err != nil {
		return fmt.Errorf("slots: write manifest of slot %s: %w", s, err)
	}
	return nil
}

// writeAtomic writes exactly size bytes of r to path through path+".tmp":
// write, fsync, compare the SHA-256 with sum (when set), rename, fsync the
// directory.
func (m *Manager) writeAtomic(path string, r io.Reader, size int64, sum string, step func(int64)) error {
	tmp := path + ".tmp"
	if ok, err := m.fs.Exists(tmp); err != nil {
		return err
	} else if ok {
		if err := m.fs.Remove(tmp); err != nil {
			return err
		}
	}
	f, err := m.fs.Create(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var off int64
	for off < size {
		n, rerr := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if n > 0 {
			h.Write(buf[:n])
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				f.Close()
				return err
			}
			off += int64(n)
			if step != nil {
				step(off)
			}
		}
		if rerr != nil {
			f.Close()
			return fmt.Errorf("%w: read after %d of %d bytes: %w", ErrBundle, off, size, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if sum != "" && hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("%w: bytes changed since verification (sha256 mismatch)", ErrBundle)
	}
	if err := m.fs.Rename(tmp, path); err != nil {
		return err
	}
	return m.fs.SyncDir(filepath.Dir(path))
}

// readFile reads a whole file of at most limit bytes.
func (m *Manager) readFile(path string, limit int64) ([]byte, error) {
	f, err := m.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", path, size, limit)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

func report(progress func(Progress), p Progress) {
	if progress != nil {
		progress(p)
	}
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
