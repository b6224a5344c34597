package mdraid

import (
	"testing"
	"testing/fstest"
)

func TestMemberErrorCounters(t *testing.T) {
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	sys := fstest.MapFS{
		"block/md0/md/array_state":         f("clean"),
		"block/md0/md/level":               f("raid1"),
		"block/md0/md/raid_disks":          f("3"),
		"block/md0/md/degraded":            f("0"),
		"block/md0/md/dev-sdb/state":       f("in_sync"),
		"block/md0/md/dev-sdb/slot":        f("0"),
		"block/md0/md/dev-sdb/errors":      f("12"),
		"class/block/sdb/device/ioerr_cnt": f("0x1f"),
		// A partition: the counter is the whole disk's.
		"block/md0/md/dev-sdc1/state":      f("in_sync"),
		"block/md0/md/dev-sdc1/slot":       f("1"),
		"block/md0/md/dev-sdc1/errors":     f("0"),
		"class/block/sdc1/partition":       f("1"),
		"class/block/sdc/device/ioerr_cnt": f("0x2"),
		// NVMe has no SCSI counter.
		"block/md0/md/dev-nvme0n1p2/state": f("in_sync"),
		"block/md0/md/dev-nvme0n1p2/slot":  f("2"),
		"class/block/nvme0n1p2/partition":  f("2"),
	}
	a, err := Read(sys, "md0")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int64{"sdb": {12, 31}, "sdc1": {0, 2}, "nvme0n1p2": {0, -1}}
	for _, m := range a.Members {
		if w := want[m.Device]; m.ReadErrors != w[0] || m.IOErrors != w[1] {
			t.Errorf("%s: read errors %d, I/O errors %d; want %d, %d", m.Device, m.ReadErrors, m.IOErrors, w[0], w[1])
		}
	}
	sys["block/md0/md/dev-sdb/errors"] = f("many")
	if _, err := Read(sys, "md0"); err == nil {
		t.Error("a malformed errors counter was accepted")
	}
	sys["block/md0/md/dev-sdb/errors"] = f("1")
	sys["class/block/sdb/device/ioerr_cnt"] = f("zz")
	a, err = Read(sys, "md0")
	for _, m := range a.Members {
		if m.Device == "sdb" && (err != nil || m.IOErrors != -1 || m.ReadErrors != 1) {
			t.Errorf("unreadable ioerr_cnt: %v, %+v; want the array read with the counter unknown", err, m)
		}
	}
}
