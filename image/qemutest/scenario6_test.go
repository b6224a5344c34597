package qemutest

import (
	"context"
	"encoding/json"
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
// disk (nvrd firmware install at boot): while the bundle is verified, once
// the guest has written 2 MiB of the slot to the boot disk (inside the
// kernel), and once it has written 12 MiB (inside the initramfs); then an
// install that is not cut completes and reboots into its trial. The write
// cuts are timed on the boot disk's write counter (QMP query-blockstats):
// the console's progress lines lag the disk by seconds under emulation.
// Every next power-on still boots (the good slot unless a complete install
// armed its trial) to the login prompt.
//
// The harness reads the boot disk as GRUB does, without replaying the ext4
// journal: what a cut leaves only in the journal is not there for the
// bootloader, which then boots the good slot.
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

	cuts := []struct {
		name    string
		written int64 // cut once the boot disk took this many bytes more; 0: at once
		line    string
		armed   bool // no cut: the install completes, syncs and reboots
	}{
		{"verifying", 0, "appliance: installing", false},
		{"2 MiB written", 2 << 20, "appliance: installing", false},
		{"12 MiB written", 12 << 20, "appliance: installing", false},
		{"none", 0, "appliance: update installed", true},
	}
	first := true
	for i, cut := range cuts {
		slot, v := a.start(ctx, fmt.Sprintf("cut%d", i), update)
		if slot != slots.A {
			t.Fatalf("cut %d: the bootloader chose %s, want a", i, slot)
		}
		at := v.expectString(cut.line, 3*time.Minute)
		wrote := int64(-1)
		if cut.written > 0 {
			wrote = v.waitWritten(bootDrive, cut.written, 2*time.Minute)
		}
		if cut.armed {
			if err := v.waitExit(2 * time.Minute); err != nil {
				t.Fatalf("qemu after the install's reboot: %v", err)
			}
		} else {
			v.kill()
		}
		v.stop()
		a.boot.readBack()
		st := a.boot.status(slots.A)
		t.Logf("power cut %s (%q %v after boot; boot disk took %d bytes more): slots %+v; slot b holds %s", cut.name, cut.line,
			at.Round(time.Millisecond), wrote, st, slotFiles(filepath.Join(a.boot.dir, string(slots.B))))
		if st.Default != slots.A {
			t.Fatalf("cut %d: default slot %s after an install", i, st.Default)
		}
		if armed := st.Trial == slots.B; armed != cut.armed {
			t.Errorf("cut %d: trial of b armed = %v, want %v (slots %+v)", i, armed, cut.armed, st)
		}
		// The next power-on boots a (or b, only if the install completed
		// and armed its trial) and reaches the console.
		slot, v = a.start(ctx, fmt.Sprintf("after-cut%d", i), "")
		if want := map[bool]slots.Slot{false: slots.A, true: slots.B}[st.Trial == slots.B]; slot != want {
			t.Fatalf("cut %d: booted %s, want %s (slots %+v)", i, slot, want, st)
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

// bootDrive is the QEMU drive id of the A/B boot disk (the third disk of
// appliance.start).
const bootDrive = "d2"

// waitWritten polls QMP until drive has taken at least n bytes of writes
// more than when called, and returns how many it had; it polls every 5 ms.
func (v *vm) waitWritten(drive string, n int64, timeout time.Duration) int64 {
	v.t.Helper()
	base := v.written(drive)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if w := v.written(drive) - base; w >= n {
			return w
		}
		time.Sleep(5 * time.Millisecond)
	}
	v.t.Fatalf("drive %s took fewer than %d bytes within %v", drive, n, timeout)
	return 0
}

// written returns the bytes the guest has written to drive so far.
func (v *vm) written(drive string) int64 {
	v.t.Helper()
	raw, err := v.qmp.execute("query-blockstats", nil)
	if err != nil {
		v.t.Fatal(err)
	}
	var stats []struct {
		Device string `json:"device"`
		Stats  struct {
			WrBytes int64 `json:"wr_bytes"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(raw, &stats); err != nil {
		v.t.Fatalf("query-blockstats: %v: %s", err, raw)
	}
	for _, s := range stats {
		if s.Device == drive {
			return s.Stats.WrBytes
		}
	}
	v.t.Fatalf("query-blockstats has no drive %s: %s", drive, raw)
	return 0
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
