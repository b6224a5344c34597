package mdraid_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/nvrfw/nvr/board/mdraid"
	"github.com/nvrfw/nvr/board/mdraid/mdraidtest"
)

func TestReadStates(t *testing.T) {
	sys := mdraidtest.NewSysfs()
	for _, tc := range []struct {
		name     string
		array    mdraid.Array
		health   mdraid.Health
		progress float64
		faulty   string
	}{
		{"clean", mdraidtest.Mirror("md0", "clean", 0, 0), mdraid.Clean, -1, ""},
		{"degraded", mdraidtest.Mirror("md0", "degraded", 0, 0), mdraid.Degraded, -1, "sdc"},
		{"recovering 25%", mdraidtest.Mirror("md0", "rebuilding", 1000, 4000), mdraid.Rebuilding, 0.25, ""},
		{"recovering done", mdraidtest.Mirror("md0", "rebuilding", 4000, 4000), mdraid.Rebuilding, 1, ""},
		{"clean again", mdraidtest.Mirror("md0", "clean", 0, 0), mdraid.Clean, -1, ""},
		{"check", func() mdraid.Array {
			a := mdraidtest.Mirror("md0", "clean", 10, 100)
			a.SyncAction = "check"
			return a
		}(), mdraid.Resyncing, 0.1, ""},
		{"inactive", func() mdraid.Array {
			a := mdraidtest.Mirror("md0", "clean", 0, 0)
			a.State = "inactive"
			return a
		}(), mdraid.Failed, -1, ""},
		{"all members gone", func() mdraid.Array {
			a := mdraidtest.Mirror("md0", "degraded", 0, 0)
			a.Degraded = 2
			return a
		}(), mdraid.Failed, -1, "sdc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys.Set(tc.array)
			got, err := mdraid.Read(sys, "md0")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.array) {
				t.Fatalf("Read = %+v\nwant   %+v", got, tc.array)
			}
			if h := got.Health(); h != tc.health {
				t.Errorf("Health = %v, want %v", h, tc.health)
			}
			if p := got.Progress(); p != tc.progress {
				t.Errorf("Progress = %v, want %v", p, tc.progress)
			}
			var faulty []string
			for _, m := range got.Members {
				if m.Faulty() {
					faulty = append(faulty, m.Device)
				}
			}
			if strings.Join(faulty, ",") != tc.faulty {
				t.Errorf("faulty members %v, want %q", faulty, tc.faulty)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	good := func() fstest.MapFS {
		return fstest.MapFS{
			"block/md1/md/array_state":   {Data: []byte("clean\n")},
			"block/md1/md/level":         {Data: []byte("raid0\n")},
			"block/md1/md/raid_disks":    {Data: []byte("2\n")},
			"block/md1/md/dev-sda/state": {Data: []byte("in_sync\n")},
		}
	}
	if a, err := mdraid.Read(good(), "md1"); err != nil || a.Health() != mdraid.Clean || a.Progress() != -1 || a.Members[0].Slot != -1 {
		t.Fatalf("raid0 without degraded/sync files: %+v, %v", a, err)
	}
	for _, tc := range []struct {
		name, file, content, array, want string
		is                               error
	}{
		{"missing array", "", "", "md9", "no such array", mdraid.ErrNoArray},
		{"bad name", "", "", "../md0", "not an md array name", nil},
		{"raid_disks garbage", "block/md1/md/raid_disks", "two\n", "md1", `raid_disks: "two"`, nil},
		{"degraded negative", "block/md1/md/degraded", "-1", "md1", "degraded", nil},
		{"sync_completed garbage", "block/md1/md/sync_completed", "12 of 40", "md1", "sync_completed", nil},
		{"sync_completed half", "block/md1/md/sync_completed", "12 / x", "md1", "sector counts", nil},
		{"slot garbage", "block/md1/md/dev-sda/slot", "first", "md1", "member sda: slot", nil},
		{"empty raid_disks", "block/md1/md/raid_disks", "\n", "md1", "raid_disks is empty", nil},
		{"huge attribute", "block/md1/md/level", strings.Repeat("x", 5000), "md1", "too long", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := good()
			if tc.file != "" {
				sys[tc.file] = &fstest.MapFile{Data: []byte(tc.content)}
			}
			_, err := mdraid.Read(sys, tc.array)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func FuzzParseSyncCompleted(f *testing.F) {
	for _, s := range []string{"none", "delayed", "1000 / 4000", "0 / 0", "18446744073709551615 / 1", "1/", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		done, total, err := mdraid.ParseSyncCompleted(s)
		if err != nil && (done != 0 || total != 0) {
			t.Fatalf("error with values %d/%d", done, total)
		}
		a := mdraid.Array{SyncDone: done, SyncTotal: total, State: "clean", RaidDisks: 2, SyncAction: "recover", Degraded: 1}
		if p := a.Progress(); p != -1 && (p < 0 || p > 1) {
			t.Fatalf("Progress %v out of range", p)
		}
		_ = a.Health()
		for _, f := range mdraid.ParseMemberState(s) {
			if f == "" || strings.Contains(f, ",") {
				t.Fatalf("member flag %q", f)
			}
		}
	})
}

func FuzzRead(f *testing.F) {
	f.Add("clean", "raid1", "2", "1", "recover", "100 / 400", "in_sync", "0")
	f.Add("inactive", "raid5", "3", "4", "idle", "none", "faulty,write_error", "none")
	f.Add("", "", "x", "-1", "", "1/", "", "-3")
	f.Fuzz(func(t *testing.T, state, level, disks, degraded, action, completed, mstate, slot string) {
		sys := fstest.MapFS{
			"block/md0/md/array_state":    {Data: []byte(state)},
			"block/md0/md/level":          {Data: []byte(level)},
			"block/md0/md/raid_disks":     {Data: []byte(disks)},
			"block/md0/md/degraded":       {Data: []byte(degraded)},
			"block/md0/md/sync_action":    {Data: []byte(action)},
			"block/md0/md/sync_completed": {Data: []byte(completed)},
			"block/md0/md/dev-sdb/state":  {Data: []byte(mstate)},
			"block/md0/md/dev-sdb/slot":   {Data: []byte(slot)},
		}
		a, err := mdraid.Read(sys, "md0")
		if err != nil {
			return
		}
		if a.RaidDisks < 0 || a.Degraded < 0 || len(a.Members) != 1 || a.Members[0].Slot < -1 {
			t.Fatalf("accepted %+v", a)
		}
		if p := a.Progress(); p != -1 && (p < 0 || p > 1) {
			t.Fatalf("progress %v", p)
		}
		if h := a.Health(); h > mdraid.Failed {
			t.Fatalf("health %v", h)
		}
	})
}

// TestReadRealArrays reads every md array of this machine (the QEMU guest's
// md0); it skips where there is none.
func TestReadRealArrays(t *testing.T) {
	names, _ := filepath.Glob("/sys/block/md*")
	if len(names) == 0 {
		t.Skip("no md arrays on this machine (/sys/block/md* absent); the QEMU image test has md0")
	}
	for _, n := range names {
		a, err := mdraid.Read(os.DirFS("/sys"), filepath.Base(n))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s %s, %d/%d members missing, %s, progress %.2f, members %+v", a.Name, a.Level, a.State, a.Degraded, a.RaidDisks, a.Health(), a.Progress(), a.Members)
	}
}
