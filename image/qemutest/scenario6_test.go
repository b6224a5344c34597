package qemutest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
)

// TestPowerCutDuringInstall is scenario 6: QEMU is killed (the power cut)
// at several points of an in-guest install of a bundle from the update
// disk, and every next power-on still boots the good slot to the login
// prompt; a last uninterrupted install still works from what the cuts
// left behind.
func TestPowerCutDuringInstall(t *testing.T) {
	e := setup(t)
	needTool(t, "debugfs", "e2fsprogs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	a := &appliance{t: t, e: e, boot: newBootDisk(t, e), apiPort: freePort(t), camPort: freePort(t)}
	a.perm, a.data = newDisks(t)
	if err := a.boot.m.Provision(ctx, openBundle(t, filepath.Join(outDir, "bundle.nvrfw")), nil); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "newer.nvrfw")
	packBundle(t, newer, devKey(t), bundle.Manifest{Version: "0.2.0", Boards: []string{"qemu"}}, nil)
	update := updateDisk(t, newer)

	first := true
	for i, cut := range []time.Duration{0, 700 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		slot, v := a.start(ctx, fmt.Sprintf("cut%d", i), update)
		if slot != slots.A {
			t.Fatalf("cut %d: the bootloader chose %s, want a", i, slot)
		}
		started := v.expectString("appliance: installing", 3*time.Minute)
		time.Sleep(cut)
		v.kill()
		v.stop()
		a.boot.readBack()
		st := a.boot.status(slots.A)
		t.Logf("power cut %v into the install (%v after boot): slots %+v; slot b holds %s", cut,
			started.Round(time.Millisecond), st, slotFiles(filepath.Join(a.boot.dir, string(slots.B))))
		if st.Default != slots.A {
			t.Fatalf("cut %d: default slot %s after a power cut during install", i, st.Default)
		}
		// The next power-on boots a (or b, only if the install completed
		// and armed its trial) and reaches the console.
		slot, v = a.start(ctx, fmt.Sprintf("after-cut%d", i), "")
		if st.Trial == "" && slot != slots.A {
			t.Fatalf("cut %d: booted %s with no trial armed", i, slot)
		}
		if first {
			firstLogin(v)
			first = false
		} else {
			login(v)
		}
		v.stop()
		a.boot.readBack()
	}
}

// slotFiles describes a slot directory's files and sizes.
func slotFiles(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "nothing"
	}
	var parts []string
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			parts = append(parts, fmt.Sprintf("%s (%d bytes)", e.Name(), info.Size()))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}
