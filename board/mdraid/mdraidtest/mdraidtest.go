// Package mdraidtest provides Sysfs, a fake /sys tree of md arrays that a
// test rewrites while code under test reads it. It is safe for concurrent
// use: each Set replaces the whole tree, so readers see one state or the next.
package mdraidtest

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"testing/fstest"

	"github.com/nvrfw/nvr/board/mdraid"
)

// Sysfs is a fake sysfs root holding md arrays.
type Sysfs struct {
	mu     sync.Mutex
	arrays map[string]mdraid.Array
	tree   fstest.MapFS
}

// NewSysfs returns an empty tree.
func NewSysfs() *Sysfs {
	return &Sysfs{arrays: map[string]mdraid.Array{}, tree: fstest.MapFS{}}
}

// Set writes (or rewrites) an array's attributes as the kernel shows them.
func (s *Sysfs) Set(a mdraid.Array) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrays[a.Name] = a
	s.render()
}

// SetFile overrides one file under the root (e.g. a malformed attribute).
func (s *Sysfs) SetFile(name, content string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := fstest.MapFS{}
	for k, v := range s.tree {
		t[k] = v
	}
	t[name] = &fstest.MapFile{Data: []byte(content)}
	s.tree = t
}

// Remove deletes an array.
func (s *Sysfs) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.arrays, name)
	s.render()
}

func (s *Sysfs) render() {
	t := fstest.MapFS{}
	put := func(name, format string, a ...any) {
		t[name] = &fstest.MapFile{Data: []byte(fmt.Sprintf(format, a...) + "\n")}
	}
	for _, a := range s.arrays {
		dir := path.Join("block", a.Name, "md")
		put(path.Join(dir, "array_state"), "%s", a.State)
		put(path.Join(dir, "level"), "%s", a.Level)
		put(path.Join(dir, "raid_disks"), "%d", a.RaidDisks)
		if a.Level != "raid0" {
			put(path.Join(dir, "degraded"), "%d", a.Degraded)
			put(path.Join(dir, "sync_action"), "%s", a.SyncAction)
			if a.SyncTotal > 0 {
				put(path.Join(dir, "sync_completed"), "%d / %d", a.SyncDone, a.SyncTotal)
			} else {
				put(path.Join(dir, "sync_completed"), "none")
			}
		}
		for _, m := range a.Members {
			md := path.Join(dir, "dev-"+m.Device)
			put(path.Join(md, "state"), "%s", strings.Join(m.State, ","))
			if m.Slot >= 0 {
				put(path.Join(md, "slot"), "%d", m.Slot)
			} else {
				put(path.Join(md, "slot"), "none")
			}
			put(path.Join(md, "errors"), "%d", m.ReadErrors)
			if m.IOErrors >= 0 {
				put(path.Join("class", "block", m.Device, "device", "ioerr_cnt"), "0x%x", m.IOErrors)
			}
		}
	}
	s.tree = t
}

// Open implements fs.FS.
func (s *Sysfs) Open(name string) (fs.File, error) {
	s.mu.Lock()
	t := s.tree
	s.mu.Unlock()
	return t.Open(name)
}

// Mirror returns a two-disk RAID 1 array named name in the given health:
// "clean", "degraded" (sdc failed), or "rebuilding" (onto sdc), with
// done/total sectors of a running sync (0, 0: none).
func Mirror(name, health string, done, total uint64) mdraid.Array {
	a := mdraid.Array{Name: name, Level: "raid1", State: "clean", RaidDisks: 2, SyncAction: "idle",
		Members: []mdraid.Member{{Device: "sdb", Slot: 0, State: []string{"in_sync"}}, {Device: "sdc", Slot: 1, State: []string{"in_sync"}}}}
	a.SyncDone, a.SyncTotal = done, total
	switch health {
	case "degraded":
		a.Degraded = 1
		a.State = "active"
		a.Members[1] = mdraid.Member{Device: "sdc", Slot: -1, State: []string{"faulty"}}
	case "rebuilding":
		a.Degraded = 1
		a.State = "active"
		a.SyncAction = "recover"
		a.Members[1] = mdraid.Member{Device: "sdc", Slot: 1, State: []string{"spare"}}
	}
	return a
}
