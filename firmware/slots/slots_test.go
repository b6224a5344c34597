package slots

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/firmware/bundle"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// kernelOf and initramfsOf are the part bytes of a test bundle of version v;
// the initramfs spans two 1 MiB copy chunks.
func kernelOf(v string) []byte    { return bytes.Repeat([]byte("K"+v), 1000) }
func initramfsOf(v string) []byte { return bytes.Repeat([]byte("I"+v), (3<<20)/(2*(len(v)+1))) }

func testBundle(t testing.TB, version string) *bundle.Bundle {
	t.Helper()
	src := func(name string, b []byte) bundle.Source {
		return bundle.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	var buf bytes.Buffer
	_, err := bundle.Pack(&buf, testKey, bundle.Manifest{Version: version, Boards: []string{"nvr4"}},
		[]bundle.Source{src(bundle.PartKernel, kernelOf(version)), src(bundle.PartInitramfs, initramfsOf(version))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), bundle.Options{Keys: []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newManager(t testing.TB, fs *crashFS) *Manager {
	t.Helper()
	m, err := New(Options{Dir: "/boot", FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkSlot fails unless slot s holds exactly the parts and manifest of
// version v.
func checkSlot(t testing.TB, fs *crashFS, s Slot, v string) {
	t.Helper()
	checkSlotOf(t, newManager(t, fs), s, v)
}

func checkSlotOf(t testing.TB, m *Manager, s Slot, v string) {
	t.Helper()
	for file, want := range map[string][]byte{KernelFile: kernelOf(v), InitramfsFile: initramfsOf(v)} {
		got, err := m.readFile(filepath.Join(m.dir, string(s), file), 1<<30)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("slot %s %s: %d bytes, %v; want version %s", s, file, len(got), err, v)
		}
	}
	man, err := m.manifest(s)
	if err != nil || man.Version != v {
		t.Fatalf("slot %s manifest: %+v, %v; want version %s", s, man.Version, err, v)
	}
}

// TestStateMachine replays scenarios: each step is one line,
//
//	provision V    factory-install version V into slot a
//	install V [E]  install V from the booted slot; E names the expected error
//	boot S         power on: the bootloader (Decide) must pick slot S
//	confirm        the booted system is healthy
//	env K=V ...    the environment block must hold exactly these values
//	slot S V       slot S must hold version V
func TestStateMachine(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{"install, trial, confirm", `
provision 1.0.0
boot a
env nvr_default=a nvr_trial=
install 2.0.0
env nvr_default=a nvr_trial=b
boot b
env nvr_default=a nvr_trial=
confirm
env nvr_default=b nvr_trial=
boot b
slot b 2.0.0
slot a 1.0.0`},
		{"install, trial, reset, fallback", `
provision 1.0.0
boot a
install 2.0.0
boot b
boot a
env nvr_default=a nvr_trial=
slot a 1.0.0
install 2.0.1
boot b
confirm
boot b
slot b 2.0.1`},
		{"no install from an unconfirmed trial", `
provision 1.0.0
boot a
install 2.0.0
boot b
install 3.0.0 unconfirmed
confirm
install 3.0.0
env nvr_default=b nvr_trial=a
boot a
confirm
env nvr_default=a nvr_trial=
slot a 3.0.0
slot b 2.0.0`},
		{"reinstall before reboot disarms first", `
provision 1.0.0
boot a
install 2.0.0
install 2.0.1
env nvr_default=a nvr_trial=b
boot b
slot b 2.0.1`},
		{"confirm of the default is a no-op", `
provision 1.0.0
boot a
confirm
env nvr_default=a nvr_trial=`},
		{"provision twice", `
provision 1.0.0
provision 1.0.0 provisioned`},
	}
	for _, tt := range tests {
		for _, onDisk := range []bool{false, true} {
			name := tt.name + "/memory"
			if onDisk {
				name = tt.name + "/temp dir"
			}
			t.Run(name, func(t *testing.T) { runScript(t, tt.script, onDisk) })
		}
	}
}

// runScript replays one TestStateMachine script on the in-memory crashFS or
// on a temporary directory of the OS file system.
func runScript(t *testing.T, script string, onDisk bool) {
	m := newManager(t, newCrashFS())
	if onDisk {
		var err error
		if m, err = New(Options{Dir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	}
	var booted Slot
	for i, line := range strings.Split(strings.TrimSpace(script), "\n") {
		f := strings.Fields(line)
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("step %d %q: %s", i+1, line, fmt.Sprintf(format, a...))
		}
		var err error
		switch f[0] {
		case "provision":
			err = m.Provision(context.Background(), testBundle(t, f[1]), nil)
		case "install":
			_, err = m.Install(context.Background(), testBundle(t, f[1]), booted, nil)
		case "boot":
			var s Slot
			s, _, err = m.Boot()
			if err == nil && s != Slot(f[1]) {
				fail("booted %s", s)
			}
			booted = s
		case "confirm":
			_, err = m.Confirm(booted)
		case "env":
			env, err := m.Env()
			if err != nil {
				fail("%v", err)
			}
			if got, want := env.String(), strings.Join(f[1:], " "); got != want {
				fail("env %q, want %q", got, want)
			}
		case "slot":
			checkSlotOf(t, m, Slot(f[1]), f[2])
		default:
			fail("unknown step")
		}
		want := map[string]error{"unconfirmed": ErrUnconfirmed, "provisioned": ErrProvisioned}
		if len(f) == 3 && (f[0] == "install" || f[0] == "provision") {
			if !errors.Is(err, want[f[2]]) {
				fail("err %v, want %v", err, want[f[2]])
			}
		} else if err != nil {
			fail("%v", err)
		}
	}
}

// TestInstallPowerCut cuts the power after every mutating file-system
// operation of an install and reboots: the bootloader must still boot the
// old slot intact, and a new install must then succeed. The last cut point
// is after the install completed: the new slot is armed.
func TestInstallPowerCut(t *testing.T) {
	base := newCrashFS()
	if err := newManager(t, base).Provision(context.Background(), testBundle(t, "1.0.0"), nil); err != nil {
		t.Fatal(err)
	}
	v2 := testBundle(t, "2.0.0")
	// Count the operations of a full install, with a stale armed trial to
	// also cover the disarm step.
	probe := base.crash()
	if _, err := newManager(t, probe).Install(context.Background(), testBundle(t, "1.5.0"), A, nil); err != nil {
		t.Fatal(err)
	}
	base = probe.crash()
	probe = base.crash()
	start := probe.ops
	if _, err := newManager(t, probe).Install(context.Background(), v2, A, nil); err != nil {
		t.Fatal(err)
	}
	total := probe.ops - start
	if total < 10 {
		t.Fatalf("install did only %d file-system operations", total)
	}
	for cut := 0; cut <= total; cut++ {
		fs := base.crash()
		fs.cutAfter, fs.armed = fs.ops+cut, cut < total
		_, err := newManager(t, fs).Install(context.Background(), v2, A, nil)
		if cut < total && !errors.Is(err, errPowerCut) {
			t.Fatalf("cut after %d of %d ops: Install returned %v", cut, total, err)
		}
		rebooted := fs.crash()
		m := newManager(t, rebooted)
		s, _, err := m.Boot()
		if err != nil {
			t.Fatalf("cut after %d ops: boot: %v", cut, err)
		}
		checkSlot(t, rebooted, A, "1.0.0")
		if s == B {
			// Only a durable armed trial may boot b, and then b is complete:
			// the stale trial (1.5.0) until the disarm is durable (create, write,
			// sync, rename, sync dir: 5 ops), or 2.0.0.
			man, err := m.manifest(B)
			if err != nil || (man.Version != "1.5.0" && man.Version != "2.0.0") || (man.Version == "1.5.0" && cut >= 5) {
				t.Fatalf("cut after %d ops: booted b holding %q, %v", cut, man.Version, err)
			}
			checkSlot(t, rebooted, B, man.Version)
			continue
		}
		if s != A {
			t.Fatalf("cut after %d ops: booted %q", cut, s)
		}
		if _, err := m.Install(context.Background(), v2, A, nil); err != nil {
			t.Fatalf("cut after %d ops: install after reboot: %v", cut, err)
		}
		if s, _, _ := m.Boot(); s != B {
			t.Fatalf("cut after %d ops: after a clean install booted %s", cut, s)
		}
		checkSlot(t, rebooted, B, "2.0.0")
	}
}

func TestInstallProgressAndCancel(t *testing.T) {
	fs := newCrashFS()
	m := newManager(t, fs)
	if err := m.Provision(context.Background(), testBundle(t, "1.0.0"), nil); err != nil {
		t.Fatal(err)
	}
	var steps []string
	var last Progress
	_, err := m.Install(context.Background(), testBundle(t, "2.0.0"), A, func(p Progress) {
		if len(steps) == 0 || steps[len(steps)-1] != p.Step {
			steps = append(steps, p.Step)
		}
		if p.Done > p.Total || p.Slot != B {
			t.Errorf("bad progress %+v", p)
		}
		last = p
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, ","); got != "kernel,initramfs,manifest,arm,done" {
		t.Fatalf("steps %s", got)
	}
	if last.Step != "done" {
		t.Fatalf("last progress %+v", last)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Install(ctx, testBundle(t, "3.0.0"), A, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Install with a canceled context: %v", err)
	}
	if s, _, _ := m.Boot(); s != A {
		t.Fatalf("after a canceled install booted %s", s)
	}
}

func TestStatus(t *testing.T) {
	m := newManager(t, newCrashFS())
	if _, err := m.Status(A); !errors.Is(err, ErrNoEnv) {
		t.Fatalf("Status before provisioning: %v", err)
	}
	if err := m.Provision(context.Background(), testBundle(t, "1.0.0"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Install(context.Background(), testBundle(t, "2.0.0"), A, nil); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(A)
	if err != nil {
		t.Fatal(err)
	}
	if st.Default != A || st.Trial != B || st.Versions[A] != "1.0.0" || st.Versions[B] != "2.0.0" {
		t.Fatalf("status %+v", st)
	}
	if _, err := m.Confirm(Slot("c")); err == nil {
		t.Fatal("Confirm(c) succeeded")
	}
}
