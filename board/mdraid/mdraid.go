// Package mdraid reads the state of Linux md RAID arrays from sysfs
// (/sys/block/mdX/md/...): the array state, how many members are missing,
// the sync action and its progress (a rebuild's), and each member's state.
// The sysfs root is an fs.FS (os.DirFS("/sys") on the target, fstest.MapFS
// in tests). Read is safe for concurrent use.
package mdraid

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Health summarises an array for alarms.
type Health uint8

// Healths, from good to bad.
const (
	Clean      Health = iota // every member in sync, no rebuild
	Resyncing                // not degraded, a resync/check/repair/reshape runs
	Rebuilding               // degraded, recovering onto a member
	Degraded                 // degraded, no rebuild running
	Failed                   // inactive, broken or unreadable array
)

// String returns the health in words.
func (h Health) String() string {
	switch h {
	case Clean:
		return "clean"
	case Resyncing:
		return "resyncing"
	case Rebuilding:
		return "rebuilding"
	case Degraded:
		return "degraded"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

// Member is one component device of an array.
type Member struct {
	Device string   // block device name, e.g. "sdb" (from md/dev-sdb)
	Slot   int      // role in the array; -1 when none (spare, faulty)
	State  []string // md/dev-*/state flags: in_sync, faulty, spare, write_error, ...
	// ReadErrors is md's count of read errors on this member that it
	// corrected from redundancy without evicting it (md/dev-*/errors): a
	// drive going bad often shows here first.
	ReadErrors int64
	// IOErrors is the SCSI layer's count of failed commands on the drive
	// (block/DEV/device/ioerr_cnt, of the whole disk for a partition); -1
	// where the kernel has no such counter (NVMe, virtio).
	IOErrors int64
}

// Faulty reports whether md marked the member faulty.
func (m Member) Faulty() bool { return hasFlag(m.State, "faulty") }

// Array is one md array's state.
type Array struct {
	Name       string // md0
	Level      string // raid1, raid5, ...
	State      string // array_state: clean, active, inactive, broken, ...
	RaidDisks  int    // members the array should have
	Degraded   int    // members missing (0 for non-redundant levels)
	SyncAction string // idle, resync, recover, check, repair, reshape, frozen; "" for raid0
	// SyncDone and SyncTotal are sectors of the running sync (sync_completed);
	// both 0 when none runs.
	SyncDone, SyncTotal uint64
	Members             []Member
}

// Progress returns the running sync's completed fraction in [0, 1], or -1
// when none runs.
func (a Array) Progress() float64 {
	if a.SyncTotal == 0 {
		return -1
	}
	return float64(min(a.SyncDone, a.SyncTotal)) / float64(a.SyncTotal)
}

// Health classifies the array.
func (a Array) Health() Health {
	switch a.State {
	case "inactive", "clear", "broken", "":
		return Failed
	}
	busy := a.SyncAction != "" && a.SyncAction != "idle" && a.SyncAction != "frozen"
	switch {
	case a.Degraded > 0 && a.Degraded >= a.RaidDisks:
		return Failed
	case a.Degraded > 0 && busy && (a.SyncAction == "recover" || a.SyncAction == "resync"):
		return Rebuilding
	case a.Degraded > 0:
		return Degraded
	case busy:
		return Resyncing
	}
	return Clean
}

// ErrNoArray is returned when the array does not exist in sysfs.
var ErrNoArray = errors.New("mdraid: no such array")

// Read reads array name (md0) from sysfs, whose root is sys (os.DirFS("/sys")).
func Read(sys fs.FS, name string) (Array, error) {
	if !strings.HasPrefix(name, "md") || strings.ContainsAny(name, "/.") {
		return Array{}, fmt.Errorf("mdraid: %q is not an md array name", name)
	}
	dir := path.Join("block", name, "md")
	if _, err := fs.Stat(sys, dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Array{}, fmt.Errorf("%w: %s", ErrNoArray, name)
		}
		return Array{}, fmt.Errorf("mdraid: %s: %w", name, err)
	}
	r := reader{sys: sys, dir: dir}
	a := Array{Name: name}
	a.State = r.str("array_state", true)
	a.Level = r.str("level", true)
	a.RaidDisks = r.int("raid_disks", true)
	a.Degraded = r.int("degraded", false)
	a.SyncAction = r.str("sync_action", false)
	if sc := r.str("sync_completed", false); r.err == nil && sc != "" {
		var err error
		a.SyncDone, a.SyncTotal, err = ParseSyncCompleted(sc)
		if err != nil {
			r.err = fmt.Errorf("sync_completed: %w", err)
		}
	}
	if r.err != nil {
		return Array{}, fmt.Errorf("mdraid: %s: %w", name, r.err)
	}
	ents, err := fs.ReadDir(sys, dir)
	if err != nil {
		return Array{}, fmt.Errorf("mdraid: %s: list members: %w", name, err)
	}
	for _, e := range ents {
		dev, ok := strings.CutPrefix(e.Name(), "dev-")
		if !ok {
			continue
		}
		m := Member{Device: dev, Slot: -1}
		mr := reader{sys: sys, dir: path.Join(dir, e.Name())}
		m.State = ParseMemberState(mr.str("state", true))
		if s := mr.str("slot", false); s != "" && s != "none" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				mr.err = fmt.Errorf("slot %q is not a number", s)
			}
			m.Slot = n
		}
		m.ReadErrors = mr.count("errors", 10)
		m.IOErrors = ioErrors(sys, dev)
		if mr.err != nil {
			return Array{}, fmt.Errorf("mdraid: %s: member %s: %w", name, dev, mr.err)
		}
		a.Members = append(a.Members, m)
	}
	return a, nil
}

// reader reads small sysfs attributes, keeping the first error.
type reader struct {
	sys fs.FS
	dir string
	err error
}

func (r *reader) str(file string, required bool) string {
	if r.err != nil {
		return ""
	}
	b, err := fs.ReadFile(r.sys, path.Join(r.dir, file))
	if err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		r.err = err
		return ""
	}
	if len(b) > 4096 {
		r.err = fmt.Errorf("%s: %d bytes, too long for a sysfs attribute", file, len(b))
		return ""
	}
	return strings.TrimSpace(string(b))
}

// count reads an optional error counter in base (0 when absent).
func (r *reader) count(file string, base int) int64 {
	s := r.str(file, false)
	if r.err != nil || s == "" {
		return 0
	}
	if base == 16 {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	}
	n, err := strconv.ParseInt(s, base, 64)
	if err != nil || n < 0 {
		r.err = fmt.Errorf("%s: %q is not a count", file, s)
		return 0
	}
	return n
}

// ioErrors reads the SCSI error counter of dev's disk: dev's own for a
// whole disk, its parent's for a partition (sdb1 -> sdb). It returns -1
// when there is none or it cannot be read: a missing counter is not a
// reason to lose the array's state.
func ioErrors(sys fs.FS, dev string) int64 {
	disk := dev
	if _, err := fs.Stat(sys, path.Join("class", "block", dev, "partition")); err == nil {
		disk = strings.TrimRight(dev, "0123456789")
		if strings.HasPrefix(dev, "nvme") || strings.HasPrefix(dev, "mmcblk") {
			disk = strings.TrimSuffix(disk, "p") // nvme0n1p2 -> nvme0n1
		}
	}
	r := reader{sys: sys, dir: path.Join("class", "block", disk, "device")}
	if _, err := fs.Stat(sys, path.Join(r.dir, "ioerr_cnt")); err != nil {
		return -1
	}
	n := r.count("ioerr_cnt", 16)
	if r.err != nil {
		return -1
	}
	return n
}

func (r *reader) int(file string, required bool) int {
	s := r.str(file, required)
	if r.err != nil || s == "" {
		if s == "" && required && r.err == nil {
			r.err = fmt.Errorf("%s is empty", file)
		}
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<16 {
		r.err = fmt.Errorf("%s: %q is not a member count", file, s)
		return 0
	}
	return n
}

// ParseSyncCompleted parses md/sync_completed: "none" or "delayed" (0, 0),
// or "DONE / TOTAL" in sectors.
func ParseSyncCompleted(s string) (done, total uint64, err error) {
	s = strings.TrimSpace(s)
	if s == "none" || s == "delayed" || s == "" {
		return 0, 0, nil
	}
	d, t, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want \"DONE / TOTAL\" or none", s)
	}
	done, err1 := strconv.ParseUint(strings.TrimSpace(d), 10, 64)
	total, err2 := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q: want \"DONE / TOTAL\" sector counts", s)
	}
	return done, total, nil
}

// ParseMemberState splits md/dev-*/state ("faulty,write_error") into flags.
func ParseMemberState(s string) []string {
	var out []string
	for _, f := range strings.Split(strings.TrimSpace(s), ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// MarshalText returns the health's name, for JSON and logs.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }
