package memfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

var _ vfs.FS = (*FS)(nil)

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newSyncedFile makes /d/f durable with content A*size.
func newSyncedFile(t *testing.T, size int) (*FS, vfs.File) {
	t.Helper()
	m := New()
	must(t, m.MkdirAll("/d"))
	must(t, m.SyncDir("/"))
	f, err := m.Create("/d/f")
	must(t, err)
	must(t, m.SyncDir("/d"))
	if size > 0 {
		_, err = f.WriteAt(fill('A', size), 0)
		must(t, err)
		must(t, f.Datasync())
	}
	return m, f
}

func fileContent(t *testing.T, m *FS, name string) []byte {
	t.Helper()
	b, err := m.ReadFile(name)
	must(t, err)
	return b
}

func TestDataDurability(t *testing.T) {
	const size = 4 * SectorSize
	A := fill('A', size)
	BBA := append(fill('B', 2*SectorSize), fill('A', 2*SectorSize)...)
	ZZA := append(fill(0, 2*SectorSize), fill('A', 2*SectorSize)...)
	tests := []struct {
		name  string
		sync  func(vfs.File) error // after the write of B*2 sectors at 0; nil: none
		crash CrashOptions
		want  []byte
	}{
		{"unsynced lost", nil, CrashOptions{Data: DataNone}, A},
		{"unsynced all kept", nil, CrashOptions{Data: DataAll}, BBA},
		{"unsynced lost zero-filled", nil, CrashOptions{Data: DataNone, ZeroLost: true}, ZZA},
		{"datasync keeps", vfs.File.Datasync, CrashOptions{Data: DataNone}, BBA},
		{"sync keeps", vfs.File.Sync, CrashOptions{Data: DataNone, ZeroLost: true}, BBA},
		{"datasync keeps under torn", vfs.File.Datasync, CrashOptions{Data: DataTorn}, BBA},
		{"datasync keeps under random", vfs.File.Datasync, CrashOptions{Data: DataRandom, ZeroLost: true, Seed: 3}, BBA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newSyncedFile(t, size)
			_, err := f.WriteAt(fill('B', 2*SectorSize), 0)
			must(t, err)
			if tt.sync != nil {
				must(t, tt.sync(f))
			}
			if got := fileContent(t, m.CrashClone(tt.crash), "/d/f"); !bytes.Equal(got, tt.want) {
				t.Errorf("after crash %v: got %q..., want %q...", tt.crash, got[:8], tt.want[:8])
			}
			// The original is untouched by cloning.
			if got := fileContent(t, m, "/d/f"); !bytes.Equal(got, BBA) {
				t.Errorf("original changed by CrashClone")
			}
		})
	}
}

func TestTornLastWrite(t *testing.T) {
	const sectors = 4
	seen := map[int]bool{}
	for seed := range uint64(64) {
		m, f := newSyncedFile(t, sectors*SectorSize)
		// An earlier unsynced write on another file survives under DataTorn.
		g, err := m.Create("/d/g")
		must(t, err)
		must(t, m.SyncDir("/d"))
		_, err = g.WriteAt(fill('G', 10), 0)
		must(t, err)
		_, err = f.WriteAt(fill('B', sectors*SectorSize), 0)
		must(t, err)
		c := m.CrashClone(CrashOptions{Data: DataTorn, Seed: seed})
		if got := fileContent(t, c, "/d/g"); !bytes.Equal(got, fill('G', 10)) {
			t.Fatalf("seed %d: earlier write not kept: %q", seed, got)
		}
		got := fileContent(t, c, "/d/f")
		k := 0
		for k < sectors && got[k*SectorSize] == 'B' {
			k++
		}
		want := append(fill('B', k*SectorSize), fill('A', (sectors-k)*SectorSize)...)
		if !bytes.Equal(got, want) || k == sectors {
			t.Fatalf("seed %d: torn write is not a strict prefix of sectors (k=%d)", seed, k)
		}
		seen[k] = true
	}
	if len(seen) != sectors {
		t.Errorf("torn prefixes seen %v, want every length 0..%d", seen, sectors-1)
	}
}

func TestRandomSectors(t *testing.T) {
	const sectors = 8
	outcomes := map[string]bool{}
	for seed := range uint64(16) {
		m, f := newSyncedFile(t, sectors*SectorSize)
		_, err := f.WriteAt(fill('B', sectors*SectorSize), 0)
		must(t, err)
		got := fileContent(t, m.CrashClone(CrashOptions{Data: DataRandom, Seed: seed}), "/d/f")
		key := make([]byte, sectors)
		for s := range sectors {
			sec := got[s*SectorSize : (s+1)*SectorSize]
			if !bytes.Equal(sec, fill(sec[0], SectorSize)) || (sec[0] != 'A' && sec[0] != 'B') {
				t.Fatalf("seed %d: sector %d mixes content", seed, s)
			}
			key[s] = sec[0]
		}
		outcomes[string(key)] = true
		again := fileContent(t, m.CrashClone(CrashOptions{Data: DataRandom, Seed: seed}), "/d/f")
		if !bytes.Equal(got, again) {
			t.Fatalf("seed %d: same seed gave a different clone", seed)
		}
	}
	if len(outcomes) < 8 {
		t.Errorf("only %d distinct random outcomes in 16 seeds", len(outcomes))
	}
}

func TestPartialSectorWrite(t *testing.T) {
	m, f := newSyncedFile(t, 2*SectorSize)
	// Two small writes into the same sector: a surviving sector carries both.
	_, err := f.WriteAt([]byte("xy"), 10)
	must(t, err)
	_, err = f.WriteAt([]byte("z"), 20)
	must(t, err)
	got := fileContent(t, m.CrashClone(CrashOptions{Data: DataAll}), "/d/f")
	if string(got[10:12]) != "xy" || got[20] != 'z' || len(got) != 2*SectorSize {
		t.Errorf("DataAll lost a small write")
	}
	got = fileContent(t, m.CrashClone(CrashOptions{Data: DataTorn}), "/d/f")
	// Torn keeps all but the last write, whose single sector is lost:
	// the earlier write's image of the sector survives.
	if string(got[10:12]) != "xy" || got[20] != 'A' {
		t.Errorf("torn single-sector write: got %q", got[8:24])
	}
}

func TestDropUnsynced(t *testing.T) {
	// After a failed fdatasync the kernel may drop the dirty pages: a
	// retry that succeeds does not make the earlier write durable.
	m, f := newSyncedFile(t, 2*SectorSize)
	_, err := f.WriteAt(fill('B', SectorSize), 0)
	must(t, err)
	must(t, m.DropUnsynced("/d/f"))
	_, err = f.WriteAt(fill('C', SectorSize), SectorSize)
	must(t, err)
	must(t, f.Datasync())
	want := append(fill('B', SectorSize), fill('C', SectorSize)...)
	if got := fileContent(t, m, "/d/f"); !bytes.Equal(got, want) {
		t.Errorf("reads do not see the dropped write")
	}
	want = append(fill('A', SectorSize), fill('C', SectorSize)...)
	if got := fileContent(t, m.CrashClone(CrashOptions{Data: DataAll}), "/d/f"); !bytes.Equal(got, want) {
		t.Errorf("after a crash: got %q... %q..., want the dropped write lost and the later one kept", got[:4], got[SectorSize:SectorSize+4])
	}
	if err := m.DropUnsynced("/d/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DropUnsynced of a missing file: %v", err)
	}
}

func TestSizeDurability(t *testing.T) {
	tests := []struct {
		name string
		do   func(*testing.T, vfs.File)
		want int
	}{
		{"preallocate unsynced", func(t *testing.T, f vfs.File) { must(t, f.Preallocate(8192)) }, 0},
		{"preallocate datasync", func(t *testing.T, f vfs.File) { must(t, f.Preallocate(8192)); must(t, f.Datasync()) }, 0},
		{"preallocate sync", func(t *testing.T, f vfs.File) { must(t, f.Preallocate(8192)); must(t, f.Sync()) }, 8192},
		{"write datasync", func(t *testing.T, f vfs.File) {
			_, err := f.WriteAt([]byte("abc"), 1000)
			must(t, err)
			must(t, f.Datasync())
		}, 1003},
		{"preallocate write datasync", func(t *testing.T, f vfs.File) {
			must(t, f.Preallocate(8192))
			_, err := f.WriteAt([]byte("abc"), 1000)
			must(t, err)
			must(t, f.Datasync())
		}, 1003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newSyncedFile(t, 0)
			tt.do(t, f)
			if got := len(fileContent(t, m.CrashClone(CrashOptions{}), "/d/f")); got != tt.want {
				t.Errorf("durable size %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDirDurability(t *testing.T) {
	tests := []struct {
		name    string
		do      func(*testing.T, *FS)
		present []string
		absent  []string
	}{
		{"create unsynced", func(t *testing.T, m *FS) {
			f, err := m.Create("/d/new")
			must(t, err)
			must(t, f.Sync())
		}, []string{"/d/f"}, []string{"/d/new"}},
		{"create synced", func(t *testing.T, m *FS) {
			_, err := m.Create("/d/new")
			must(t, err)
			must(t, m.SyncDir("/d"))
		}, []string{"/d/new"}, nil},
		{"rename unsynced", func(t *testing.T, m *FS) { must(t, m.Rename("/d/f", "/d/g")) }, []string{"/d/f"}, []string{"/d/g"}},
		{"rename synced", func(t *testing.T, m *FS) {
			must(t, m.Rename("/d/f", "/d/g"))
			must(t, m.SyncDir("/d"))
		}, []string{"/d/g"}, []string{"/d/f"}},
		{"rename across dirs, only target synced", func(t *testing.T, m *FS) {
			must(t, m.MkdirAll("/e"))
			must(t, m.SyncDir("/"))
			must(t, m.Rename("/d/f", "/e/f"))
			must(t, m.SyncDir("/e"))
		}, []string{"/d/f", "/e/f"}, nil},
		{"remove unsynced", func(t *testing.T, m *FS) { must(t, m.Remove("/d/f")) }, []string{"/d/f"}, nil},
		{"remove synced", func(t *testing.T, m *FS) {
			must(t, m.Remove("/d/f"))
			must(t, m.SyncDir("/d"))
		}, nil, []string{"/d/f"}},
		{"mkdir unsynced", func(t *testing.T, m *FS) { must(t, m.MkdirAll("/x/y")) }, nil, []string{"/x", "/x/y"}},
		{"mkdir parent synced only", func(t *testing.T, m *FS) {
			must(t, m.MkdirAll("/x/y"))
			must(t, m.SyncDir("/"))
		}, []string{"/x"}, []string{"/x/y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newSyncedFile(t, 100)
			tt.do(t, m)
			c := m.CrashClone(CrashOptions{})
			for _, p := range tt.present {
				if ok, _ := c.Exists(p); !ok {
					t.Errorf("%s lost", p)
				}
			}
			for _, p := range tt.absent {
				if ok, _ := c.Exists(p); ok {
					t.Errorf("%s survived", p)
				}
			}
			if ok, _ := c.Exists("/d/f"); ok {
				if got := fileContent(t, c, "/d/f"); !bytes.Equal(got, fill('A', 100)) {
					t.Errorf("renamed file lost its synced content")
				}
			}
		})
	}
}

func TestDirsAll(t *testing.T) {
	m, _ := newSyncedFile(t, 10)
	_, err := m.Create("/d/new")
	must(t, err)
	must(t, m.Remove("/d/f"))
	c := m.CrashClone(CrashOptions{Dirs: DirsAll})
	if ok, _ := c.Exists("/d/new"); !ok {
		t.Errorf("DirsAll lost a created file")
	}
	if ok, _ := c.Exists("/d/f"); ok {
		t.Errorf("DirsAll kept a removed file")
	}
}

func TestDirsRandom(t *testing.T) {
	seen := map[[2]bool]bool{}
	for seed := range uint64(32) {
		m, _ := newSyncedFile(t, 10)
		_, err := m.Create("/d/a")
		must(t, err)
		must(t, m.Remove("/d/f"))
		c := m.CrashClone(CrashOptions{Dirs: DirsRandom, Seed: seed})
		a, _ := c.Exists("/d/a")
		f, _ := c.Exists("/d/f")
		seen[[2]bool{a, f}] = true
	}
	if len(seen) != 4 {
		t.Errorf("random directory outcomes %v, want all 4 combinations", seen)
	}
}

func TestHook(t *testing.T) {
	m := New()
	var ops []Op
	var before []byte
	m.SetHook(func(op Op) {
		ops = append(ops, op)
		if op.Kind == OpWrite && op.Off == 5 {
			before = fileContent(t, m.CrashClone(CrashOptions{Data: DataAll, Dirs: DirsAll}), "/d/f")
		}
	})
	must(t, m.MkdirAll("/d"))
	must(t, m.MkdirAll("/d")) // exists: not a mutation
	f, err := m.Create("/d/f")
	must(t, err)
	_, err = f.WriteAt([]byte("hello"), 0)
	must(t, err)
	_, err = f.WriteAt([]byte("world"), 5)
	must(t, err)
	_, err = f.ReadAt(make([]byte, 3), 0)
	must(t, err)
	must(t, f.Preallocate(4096))
	must(t, f.Datasync())
	must(t, f.Sync())
	must(t, m.SyncDir("/d"))
	must(t, m.Rename("/d/f", "/d/g"))
	must(t, m.Remove("/d/g"))
	_, _ = m.List("/d")
	_, _ = m.Exists("/d")
	want := []Op{
		{Kind: OpMkdir, Path: "/d", N: 1},
		{Kind: OpCreate, Path: "/d/f", N: 2},
		{Kind: OpWrite, Path: "/d/f", Off: 0, Len: 5, N: 3},
		{Kind: OpWrite, Path: "/d/f", Off: 5, Len: 5, N: 4},
		{Kind: OpPreallocate, Path: "/d/f", Len: 4096, N: 5},
		{Kind: OpDatasync, Path: "/d/f", N: 6},
		{Kind: OpSync, Path: "/d/f", N: 7},
		{Kind: OpSyncDir, Path: "/d", N: 8},
		{Kind: OpRename, Path: "/d/f", NewPath: "/d/g", N: 9},
		{Kind: OpRemove, Path: "/d/g", N: 10},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("hook saw\n%v\nwant\n%v", ops, want)
	}
	if string(before) != "hello" {
		t.Errorf("clone taken in the hook before a write holds %q, want %q", before, "hello")
	}
	if m.Ops() != 10 {
		t.Errorf("Ops() = %d, want 10", m.Ops())
	}
}

func TestFreeze(t *testing.T) {
	m, f := newSyncedFile(t, 10)
	// Freezing from the hook fails the operation itself, unapplied.
	m.SetHook(func(op Op) {
		if op.Kind == OpWrite {
			m.Freeze()
		}
	})
	if _, err := f.WriteAt([]byte("zz"), 0); !errors.Is(err, ErrFrozen) {
		t.Fatalf("write after freeze in hook: %v, want ErrFrozen", err)
	}
	if got := fileContent(t, m, "/d/f"); !bytes.Equal(got, fill('A', 10)) {
		t.Errorf("frozen write was applied")
	}
	calls := []struct {
		name string
		err  error
	}{
		{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }()},
		{"Datasync", f.Datasync()},
		{"Sync", f.Sync()},
		{"Preallocate", f.Preallocate(100)},
		{"Size", func() error { _, err := f.Size(); return err }()},
		{"Create", func() error { _, err := m.Create("/d/x"); return err }()},
		{"Open", func() error { _, err := m.Open("/d/f"); return err }()},
		{"OpenReadWrite", func() error { _, err := m.OpenReadWrite("/d/f"); return err }()},
		{"Rename", m.Rename("/d/f", "/d/g")},
		{"Remove", m.Remove("/d/f")},
		{"MkdirAll", m.MkdirAll("/q")},
		{"List", func() error { _, err := m.List("/d"); return err }()},
		{"Exists", func() error { _, err := m.Exists("/d"); return err }()},
		{"SyncDir", m.SyncDir("/d")},
	}
	for _, c := range calls {
		if !errors.Is(c.err, ErrFrozen) {
			t.Errorf("%s after Freeze: %v, want ErrFrozen", c.name, c.err)
		}
	}
	// A clone of a frozen FS is alive.
	c := m.CrashClone(CrashOptions{})
	if _, err := c.Create("/d/x"); err != nil {
		t.Errorf("clone of frozen FS: %v", err)
	}
}

func TestFileSystemSemantics(t *testing.T) {
	m, f := newSyncedFile(t, 10)
	if _, err := m.Create("/d/f"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create existing: %v, want ErrExist", err)
	}
	if _, err := m.Open("/d/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing: %v, want ErrNotExist", err)
	}
	if _, err := m.Create("/nope/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create in missing dir: %v, want ErrNotExist", err)
	}
	if err := m.Remove("/d"); err == nil {
		t.Errorf("Remove non-empty directory succeeded")
	}
	ro, err := m.Open("/d/f")
	must(t, err)
	if _, err := ro.WriteAt([]byte("x"), 0); err == nil {
		t.Errorf("write to read-only file succeeded")
	}
	buf := make([]byte, 20)
	n, err := f.ReadAt(buf, 5)
	if n != 5 || err != io.EOF {
		t.Errorf("short ReadAt = %d, %v; want 5, EOF", n, err)
	}
	for _, name := range []string{"/d/c", "/d/a", "/d/b"} {
		_, err := m.Create(name)
		must(t, err)
	}
	names, err := m.List("/d")
	must(t, err)
	if !reflect.DeepEqual(names, []string{"a", "b", "c", "f"}) {
		t.Errorf("List = %v", names)
	}
	must(t, f.Close())
	if _, err := f.ReadAt(buf, 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadAt after Close: %v, want ErrClosed", err)
	}
	// A file still open after its name is removed keeps working.
	g, err := m.OpenReadWrite("/d/a")
	must(t, err)
	must(t, m.Remove("/d/a"))
	if _, err := g.WriteAt([]byte("x"), 0); err != nil {
		t.Errorf("write to unlinked open file: %v", err)
	}
}

func TestConcurrentUseAndClone(t *testing.T) {
	// Writers on several files, a reader, and crash clones taken from the
	// hook and from another goroutine, all at once (run with -race).
	m := New()
	must(t, m.MkdirAll("/d"))
	var clones atomic.Int64
	m.SetHook(func(op Op) {
		if op.N%7 == 0 {
			m.CrashClone(CrashOptions{Data: DataRandom, Seed: uint64(op.N)})
			clones.Add(1)
		}
	})
	var wg sync.WaitGroup
	for w := range 4 {
		f, err := m.Create(fmt.Sprintf("/d/f%d", w))
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := f.WriteAt(fill(byte(w), 700), int64(i*700)); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					if err := f.Datasync(); err != nil {
						t.Error(err)
						return
					}
				}
				buf := make([]byte, 700)
				if _, err := f.ReadAt(buf, int64(i*700)); err != nil || !bytes.Equal(buf, fill(byte(w), 700)) {
					t.Errorf("read back: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			c := m.CrashClone(CrashOptions{Data: DataAll, Dirs: DirsAll})
			if _, err := c.List("/d"); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	if clones.Load() == 0 {
		t.Error("hook never cloned")
	}
	c := m.CrashClone(CrashOptions{Data: DataAll, Dirs: DirsAll})
	for w := range 4 {
		if got := fileContent(t, c, fmt.Sprintf("/d/f%d", w)); !bytes.Equal(got, fill(byte(w), 50*700)) {
			t.Errorf("file %d: wrong content after concurrent writes", w)
		}
	}
}
