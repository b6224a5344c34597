package faultfs

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs"
	"github.com/nvrfw/nvr/ringstore/vfs/memfs"
)

var _ vfs.FS = (*FS)(nil)

// setup returns a faultfs over memfs holding /v/slots/000000.slot,
// /v/slots/000001.slot and /v/VOLUME, open for writing.
func setup(t *testing.T) (*FS, map[string]vfs.File) {
	t.Helper()
	f := New(memfs.New())
	if err := f.MkdirAll("/v/slots"); err != nil {
		t.Fatal(err)
	}
	files := map[string]vfs.File{}
	for _, name := range []string{"/v/slots/000000.slot", "/v/slots/000001.slot", "/v/VOLUME"} {
		fl, err := f.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = fl
	}
	return f, files
}

func TestFailRules(t *testing.T) {
	slotSync := All(Kinds(OpDatasync), Glob("*.slot"))
	tests := []struct {
		name  string
		arm   func(*FS)
		ops   []string // "sync:NAME" or "write:NAME", in order
		fails []bool   // which of ops fail
	}{
		{
			name:  "no rules",
			arm:   func(*FS) {},
			ops:   []string{"sync:/v/slots/000000.slot", "write:/v/VOLUME"},
			fails: []bool{false, false},
		},
		{
			name: "every slot datasync",
			arm:  func(f *FS) { f.Fail(slotSync, syscall.EIO) },
			ops: []string{"sync:/v/slots/000000.slot", "sync:/v/VOLUME", "write:/v/slots/000000.slot",
				"sync:/v/slots/000001.slot"},
			fails: []bool{true, false, false, true},
		},
		{
			name: "second slot datasync only",
			arm:  func(f *FS) { f.FailNth(2, slotSync, syscall.EIO) },
			ops: []string{"sync:/v/slots/000000.slot", "sync:/v/VOLUME", "sync:/v/slots/000001.slot",
				"sync:/v/slots/000000.slot", "sync:/v/slots/000000.slot"},
			fails: []bool{false, false, true, false, false},
		},
		{
			name:  "first write anywhere",
			arm:   func(f *FS) { f.FailNth(1, Kinds(OpWriteAt), syscall.ENOSPC) },
			ops:   []string{"sync:/v/VOLUME", "write:/v/VOLUME", "write:/v/VOLUME"},
			fails: []bool{false, true, false},
		},
		{
			name: "several Nth rules count independently",
			arm: func(f *FS) {
				f.FailNth(1, slotSync, syscall.EIO)
				f.FailNth(2, slotSync, syscall.EIO)
				f.FailNth(4, slotSync, syscall.EIO)
			},
			ops: []string{"sync:/v/slots/000000.slot", "sync:/v/slots/000000.slot", "sync:/v/slots/000000.slot",
				"sync:/v/slots/000000.slot", "sync:/v/slots/000000.slot"},
			fails: []bool{true, true, false, true, false},
		},
		{
			name: "cleared",
			arm: func(f *FS) {
				f.Fail(Mutating, syscall.EIO)
				f.Clear()
			},
			ops:   []string{"sync:/v/VOLUME", "write:/v/VOLUME"},
			fails: []bool{false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, files := setup(t)
			tt.arm(f)
			injected := 0
			for i, op := range tt.ops {
				kind, name, _ := strings.Cut(op, ":")
				var err error
				if kind == "sync" {
					err = files[name].Datasync()
				} else {
					_, err = files[name].WriteAt([]byte("x"), 0)
				}
				if (err != nil) != tt.fails[i] {
					t.Errorf("op %d %s: err %v, want failure %v", i, op, err, tt.fails[i])
				}
				if err != nil {
					injected++
					var pe *fs.PathError
					if !errors.As(err, &pe) || pe.Path != name || errors.Is(err, syscall.EINVAL) {
						t.Errorf("op %d: error %v does not name %s", i, err, name)
					}
				}
			}
			if f.Injected() != injected {
				t.Errorf("Injected() = %d, want %d", f.Injected(), injected)
			}
		})
	}
}

func TestInjectedErrorKind(t *testing.T) {
	f, files := setup(t)
	f.Fail(Kinds(OpDatasync), syscall.EIO)
	err := files["/v/VOLUME"].Datasync()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Datasync: %v, want EIO", err)
	}
	// A failed operation never reaches the inner FS: the write is not there.
	f.Clear()
	f.Fail(Kinds(OpWriteAt), syscall.EIO)
	if _, err := files["/v/VOLUME"].WriteAt([]byte("abc"), 0); err == nil {
		t.Fatal("write succeeded")
	}
	if n, _ := files["/v/VOLUME"].Size(); n != 0 {
		t.Errorf("failed write reached the inner file: size %d", n)
	}
}

func TestDrop(t *testing.T) {
	m := memfs.New()
	f := New(m)
	if err := f.MkdirAll("/v"); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	fl, err := f.Create("/v/a.slot")
	if err != nil {
		t.Fatal(err)
	}
	f.Drop(Glob("*.slot"))
	if err := f.SyncDir("/v"); err != nil { // not a slot: passes
		t.Fatal(err)
	}
	if n, err := fl.WriteAt([]byte("abc"), 0); n != 3 || err != nil {
		t.Fatalf("dropped write: %d, %v; want success", n, err)
	}
	if err := fl.Datasync(); err != nil {
		t.Fatalf("dropped Datasync: %v", err)
	}
	if n, _ := fl.Size(); n != 0 {
		t.Errorf("a dropped write reached the file: size %d", n)
	}
	f.Clear()
	if _, err := fl.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	f.Drop(Kinds(OpDatasync))
	if err := fl.Datasync(); err != nil {
		t.Fatal(err)
	}
	// The flush was dropped: a crash loses the write; the entry survives.
	c := m.CrashClone(memfs.CrashOptions{})
	if got, err := c.ReadFile("/v/a.slot"); err != nil || len(got) != 0 {
		t.Errorf("after a dropped flush and a crash: %q, %v; want an empty file", got, err)
	}
	if f.Injected() != 3 {
		t.Errorf("Injected() = %d, want 3", f.Injected())
	}
}

func TestOnFaultDropsUnsynced(t *testing.T) {
	// The harness's wiring: a failed Datasync drops the file's unsynced
	// writes, so a successful retry does not make them durable.
	m := memfs.New()
	f := New(m)
	f.SetOnFault(func(op Op, err error) {
		if err != nil && op.Kind == OpDatasync {
			if derr := m.DropUnsynced(op.Path); derr != nil {
				t.Error(derr)
			}
		}
	})
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	fl, err := f.Create("/a.slot")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.WriteAt([]byte("lost"), 0); err != nil {
		t.Fatal(err)
	}
	f.FailNth(1, Kinds(OpDatasync), syscall.EIO)
	if err := fl.Datasync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Datasync: %v, want EIO", err)
	}
	if err := fl.Datasync(); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, err := m.CrashClone(memfs.CrashOptions{}).ReadFile("/a.slot")
	if err != nil || len(got) != 0 {
		t.Errorf("after EIO, a successful retry and a crash: %q, %v; want the write lost", got, err)
	}
}

func TestCounts(t *testing.T) {
	f, files := setup(t)
	fl := files["/v/slots/000000.slot"]
	for range 3 {
		if _, err := fl.WriteAt([]byte("abc"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Datasync(); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.ReadAt(make([]byte, 3), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.List("/v/slots"); err != nil {
		t.Fatal(err)
	}
	want := map[OpKind]int{OpCreate: 3, OpMkdirAll: 1, OpWriteAt: 3, OpDatasync: 1, OpReadAt: 1, OpList: 1, OpSync: 0}
	for k, n := range want {
		if got := f.Count(k); got != n {
			t.Errorf("Count(%s) = %d, want %d", k, got, n)
		}
	}
}

func TestHangRelease(t *testing.T) {
	f, files := setup(t)
	f.Hang(All(Kinds(OpDatasync), Glob("*.slot")))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	done := make(chan error, 2)
	for _, name := range []string{"/v/slots/000000.slot", "/v/slots/000001.slot"} {
		go func() { done <- files[name].Datasync() }()
	}
	if err := f.WaitHung(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Non-matching operations are not held up.
	if err := files["/v/VOLUME"].Datasync(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("hung Datasync returned before Release: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if f.Hung() != 2 {
		t.Errorf("Hung() = %d, want 2", f.Hung())
	}
	f.Release()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("released Datasync: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("Datasync still hung after Release")
		}
	}
	if f.Hung() != 0 {
		t.Errorf("Hung() = %d after release, want 0", f.Hung())
	}
	// After Release, matching operations no longer hang.
	if err := files["/v/slots/000000.slot"].Datasync(); err != nil {
		t.Fatal(err)
	}
	f.Release() // idempotent
}

func TestWaitHungTimeout(t *testing.T) {
	f, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.WaitHung(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitHung with nothing hung: %v, want deadline exceeded", err)
	}
}

func TestHangThenFail(t *testing.T) {
	// A hung operation matched by a failure rule fails once released.
	f, files := setup(t)
	f.Hang(Kinds(OpDatasync))
	f.Fail(Kinds(OpDatasync), syscall.EIO)
	done := make(chan error, 1)
	go func() { done <- files["/v/VOLUME"].Datasync() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitHung(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Release()
	if err := <-done; !errors.Is(err, syscall.EIO) {
		t.Errorf("released op: %v, want EIO", err)
	}
}
