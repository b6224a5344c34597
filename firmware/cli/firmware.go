package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
)

// firmwareCommand is "nvrd firmware": signed bundles and A/B slots.
func firmwareCommand() *Command {
	return &Command{
		Name:    "firmware",
		Summary: "build, verify and install signed firmware bundles (A/B slots)",
		Usage: `Signed firmware bundles (kernel + initramfs + manifest, ed25519) and the
A/B slots of the boot disk. Build side: keygen, pack. Device side: verify,
install, status, confirm.`,
		Sub: []*Command{fwKeygen(), fwPack(), fwVerify(), fwInstall(), fwStatus(), fwConfirm()},
	}
}

// stringList is a repeatable flag that also splits on commas.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func fwKeygen() *Command {
	return &Command{
		Name:    "keygen",
		Summary: "create an ed25519 signing key (build side)",
		Usage: `Writes a new signing key to KEY (PKCS#8 PEM, mode 0600) and its public key to
KEY.pub (PKIX PEM), which the device trusts. Existing files are never
overwritten.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			out := fs.String("out", "", "path of the private key to create (required)")
			return func(_ context.Context, env Env, args []string) error {
				if *out == "" || len(args) > 0 {
					return usageErrorf("keygen needs --out KEY and no arguments")
				}
				priv, err := bundle.GenerateKey(rand.Reader)
				if err != nil {
					return err
				}
				privPEM, err := bundle.MarshalPrivateKey(priv)
				if err != nil {
					return err
				}
				pub := priv.Public().(ed25519.PublicKey)
				pubPEM, err := bundle.MarshalPublicKey(pub)
				if err != nil {
					return err
				}
				if err := createFile(*out, privPEM, 0o600); err != nil {
					return err
				}
				if err := createFile(*out+".pub", pubPEM, 0o644); err != nil {
					os.Remove(*out)
					return err
				}
				fmt.Fprintf(env.Stdout, "key %s written to %s (public key %s.pub)\n", bundle.KeyID(pub), *out, *out)
				return nil
			}
		},
	}
}

// createFile writes a new file (never an existing one) and syncs it.
func createFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

func fileSource(name, path string) bundle.Source {
	return bundle.Source{Name: name, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

func fwPack() *Command {
	return &Command{
		Name:    "pack",
		Summary: "pack and sign a firmware bundle (build side)",
		Usage: `Packs KERNEL and INITRAMFS into a bundle signed with KEY. The bundle is
written to a temporary file and renamed to OUT only when complete.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			key := fs.String("key", "", "private signing key (from keygen; required)")
			kernel := fs.String("kernel", "", "kernel image (required)")
			initramfs := fs.String("initramfs", "", "initramfs image (required)")
			version := fs.String("version", "", "firmware version, semver-like (required)")
			minVersion := fs.String("min-version", "", "lowest running version that may install this bundle")
			buildID := fs.String("build-id", "", "build identity recorded in the manifest (default: this binary's)")
			out := fs.String("o", "", "bundle to write (required)")
			var boards stringList
			fs.Var(&boards, "board", "board model the firmware fits (repeatable or comma-separated; required)")
			return func(_ context.Context, env Env, args []string) error {
				if *key == "" || *kernel == "" || *initramfs == "" || *version == "" || *out == "" || len(boards) == 0 || len(args) > 0 {
					return usageErrorf("pack needs --key, --kernel, --initramfs, --version, --board and -o")
				}
				raw, err := os.ReadFile(*key)
				if err != nil {
					return fmt.Errorf("read signing key: %w", err)
				}
				priv, err := bundle.ParsePrivateKey(raw)
				if err != nil {
					return fmt.Errorf("signing key %s: %w", *key, err)
				}
				if *buildID == "" {
					*buildID = env.BuildID
				}
				m := bundle.Manifest{Version: *version, MinVersion: *minVersion, Boards: boards, BuildID: *buildID}
				var got bundle.Manifest
				err = writeAtomic(*out, func(w io.Writer) error {
					var err error
					got, err = bundle.Pack(w, priv, m, []bundle.Source{
						fileSource(bundle.PartKernel, *kernel), fileSource(bundle.PartInitramfs, *initramfs),
					})
					return err
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s: firmware %s for %s, signed by key %s\n", *out, got.Version, strings.Join(got.Boards, ","), got.KeyID)
				return nil
			}
		},
	}
}

// writeAtomic writes path through a temporary file in the same directory:
// write, fsync, rename. On error nothing is left behind.
func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := write(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync %s: %w", path, err))
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(fmt.Errorf("chmod %s: %w", path, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}

// verifyFlags are the policy flags shared by verify and install.
type verifyFlags struct {
	pubkey, board, current *string
	allowDowngrade         *bool
}

func addVerifyFlags(fs *flag.FlagSet, currentDefault string) verifyFlags {
	return verifyFlags{
		pubkey:         fs.String("pubkey", "", "trusted public key(s), PEM (required)"),
		board:          fs.String("board", "", "refuse a bundle that does not fit this board model"),
		current:        fs.String("current-version", currentDefault, "running version: refuse downgrades and bundles whose minimum version is above it"),
		allowDowngrade: fs.Bool("allow-downgrade", false, "accept a bundle older than --current-version"),
	}
}

// open verifies the bundle at path with the flags' policy.
func (v verifyFlags) open(env Env, path string) (*bundle.Bundle, *os.File, error) {
	if *v.pubkey == "" {
		return nil, nil, usageErrorf("--pubkey is required")
	}
	raw, err := os.ReadFile(*v.pubkey)
	if err != nil {
		return nil, nil, fmt.Errorf("read public key: %w", err)
	}
	keys, err := bundle.ParsePublicKeys(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("public key %s: %w", *v.pubkey, err)
	}
	cur := *v.current
	if cur != "" {
		if _, err := bundle.ParseVersion(cur); err != nil {
			fmt.Fprintf(env.Stderr, "nvrd: warning: running version %q is not semver-like; version checks skipped\n", cur)
			cur = ""
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open bundle: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat bundle: %w", err)
	}
	b, err := bundle.Open(f, st.Size(), bundle.Options{Keys: keys, Board: *v.board, CurrentVersion: cur, AllowDowngrade: *v.allowDowngrade})
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s refused: %w", path, err)
	}
	return b, f, nil
}

func printManifest(w io.Writer, m bundle.Manifest) {
	fmt.Fprintf(w, "version:     %s\n", m.Version)
	if m.MinVersion != "" {
		fmt.Fprintf(w, "min version: %s\n", m.MinVersion)
	}
	fmt.Fprintf(w, "boards:      %s\n", strings.Join(m.Boards, ", "))
	fmt.Fprintf(w, "build:       %s\n", m.BuildID)
	fmt.Fprintf(w, "key:         %s\n", m.KeyID)
	for _, p := range m.Parts {
		fmt.Fprintf(w, "part:        %-10s %10d bytes  sha256 %s\n", p.Name, p.Size, p.SHA256)
	}
}

func fwVerify() *Command {
	return &Command{
		Name:    "verify",
		Summary: "verify a firmware bundle's signature, parts and policy",
		Usage: `Verifies BUNDLE: signature by a trusted key, every part's size and SHA-256,
and (when given) the board and version policy. Prints the manifest; exits 1
with the reason when the bundle must be refused.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			vf := addVerifyFlags(fs, "")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) != 1 {
					return usageErrorf("verify needs one BUNDLE argument")
				}
				b, f, err := vf.open(env, args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				fmt.Fprintf(env.Stdout, "%s: OK\n", args[0])
				printManifest(env.Stdout, b.Manifest)
				return nil
			}
		},
	}
}

// bootFlags locate the boot directory and the booted slot.
type bootFlags struct{ dir, cmdline *string }

func addBootFlags(fs *flag.FlagSet) bootFlags {
	return bootFlags{
		dir:     fs.String("boot", "/boot", "boot directory holding grubenv and the slots"),
		cmdline: fs.String("cmdline", "/proc/cmdline", "file holding the kernel command line (nvr.slot=)"),
	}
}

func (b bootFlags) open() (*slots.Manager, slots.Slot, error) {
	raw, err := os.ReadFile(*b.cmdline)
	if err != nil {
		return nil, "", fmt.Errorf("read kernel command line: %w", err)
	}
	booted, err := slots.BootedSlot(string(raw))
	if err != nil {
		return nil, "", err
	}
	m, err := slots.New(slots.Options{Dir: *b.dir})
	if err != nil {
		return nil, "", err
	}
	return m, booted, nil
}

func fwInstall() *Command {
	return &Command{
		Name:    "install",
		Summary: "install a bundle into the inactive slot for one trial boot",
		Usage: `Verifies BUNDLE (as verify does; --current-version defaults to this binary's
version), writes it into the slot that is not running and arms it for one
trial boot. Reboot to try it; nvrd confirms it once healthy.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			vf := addVerifyFlags(fs, "")
			bf := addBootFlags(fs)
			return func(ctx context.Context, env Env, args []string) error {
				if len(args) != 1 {
					return usageErrorf("install needs one BUNDLE argument")
				}
				if *vf.current == "" {
					*vf.current = env.Version
				}
				b, f, err := vf.open(env, args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				m, booted, err := bf.open()
				if err != nil {
					return err
				}
				last := ""
				target, err := m.Install(ctx, b, booted, func(p slots.Progress) {
					if p.Step != last || p.Done == p.Total {
						fmt.Fprintf(env.Stdout, "slot %s: %-9s %d/%d bytes\n", p.Slot, p.Step, p.Done, p.Total)
						last = p.Step
					}
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "firmware %s installed in slot %s, armed for one trial boot; reboot to try it\n", b.Manifest.Version, target)
				return nil
			}
		},
	}
}

func fwStatus() *Command {
	return &Command{
		Name:    "status",
		Summary: "show the A/B slots",
		Usage:   "Prints the booted, default and trial slots and each slot's version.",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			bf := addBootFlags(fs)
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("status takes no arguments")
				}
				m, booted, err := bf.open()
				if err != nil {
					return err
				}
				st, err := m.Status(booted)
				if err != nil {
					return err
				}
				for _, s := range []slots.Slot{slots.A, slots.B} {
					var tags []string
					if s == st.Booted {
						tags = append(tags, "booted")
					}
					if s == st.Default {
						tags = append(tags, "default")
					}
					if s == st.Trial {
						tags = append(tags, "trial")
					}
					v := st.Versions[s]
					if v == "" {
						v = "(empty or incomplete)"
					}
					fmt.Fprintf(env.Stdout, "slot %s: %-24s %s\n", s, v, strings.Join(tags, ","))
				}
				return nil
			}
		},
	}
}

func fwConfirm() *Command {
	return &Command{
		Name:    "confirm",
		Summary: "make the booted slot the default (after a healthy trial)",
		Usage:   "Marks the booted slot as the default. nvrd run does this itself once healthy.",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			bf := addBootFlags(fs)
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("confirm takes no arguments")
				}
				m, booted, err := bf.open()
				if err != nil {
					return err
				}
				changed, err := m.Confirm(booted)
				if err != nil {
					return err
				}
				if !changed {
					fmt.Fprintf(env.Stdout, "slot %s already is the default\n", booted)
					return nil
				}
				fmt.Fprintf(env.Stdout, "slot %s confirmed as the default\n", booted)
				return nil
			}
		},
	}
}
