package memfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// SectorSize is the granularity at which unsynced writes survive a crash.
const SectorSize = 512

// ErrFrozen is returned by every operation after Freeze: the simulated
// process is dead.
var ErrFrozen = errors.New("memfs: file system frozen after a simulated crash")

// OpKind names a mutating operation.
type OpKind uint8

// The mutating operations the hook sees.
const (
	OpCreate      OpKind = iota + 1 // FS.Create
	OpWrite                         // File.WriteAt
	OpDatasync                      // File.Datasync
	OpSync                          // File.Sync
	OpPreallocate                   // File.Preallocate
	OpRename                        // FS.Rename
	OpRemove                        // FS.Remove
	OpMkdir                         // FS.MkdirAll, when it creates something
	OpSyncDir                       // FS.SyncDir
)

// String returns the operation's method name.
func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "Create"
	case OpWrite:
		return "WriteAt"
	case OpDatasync:
		return "Datasync"
	case OpSync:
		return "Sync"
	case OpPreallocate:
		return "Preallocate"
	case OpRename:
		return "Rename"
	case OpRemove:
		return "Remove"
	case OpMkdir:
		return "MkdirAll"
	case OpSyncDir:
		return "SyncDir"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op describes a mutating operation about to happen.
type Op struct {
	Kind OpKind
	// Path is the file or directory operated on (Rename: the old name),
	// cleaned and absolute.
	Path string
	// NewPath is Rename's new name; empty otherwise.
	NewPath string
	// Off and Len are WriteAt's offset and length; Preallocate's size is Len.
	Off, Len int64
	// N is the running count of mutating operations on this FS, from 1.
	N int
}

// String formats the operation for test failure messages.
func (o Op) String() string {
	switch o.Kind {
	case OpWrite:
		return fmt.Sprintf("#%d %s %s [%d,+%d)", o.N, o.Kind, o.Path, o.Off, o.Len)
	case OpPreallocate:
		return fmt.Sprintf("#%d %s %s %d", o.N, o.Kind, o.Path, o.Len)
	case OpRename:
		return fmt.Sprintf("#%d %s %s -> %s", o.N, o.Kind, o.Path, o.NewPath)
	}
	return fmt.Sprintf("#%d %s %s", o.N, o.Kind, o.Path)
}

// FS is an in-memory file system that remembers what is durable.
type FS struct {
	mu     sync.Mutex
	root   *node
	hook   func(Op)
	frozen bool
	nops   int
	wseq   uint64 // sequence number of the last WriteAt
}

// node is a file or a directory.
type node struct {
	dir bool
	// Directories: the current entries, and the entries as of the last
	// SyncDir (what a crash keeps).
	entries, synced map[string]*node
	// Files: current content, durable content (its length is the durable
	// size), and the writes since the last Datasync or Sync.
	data, durable content
	pending       []pendingWrite
	writtenEnd    int64 // end of the furthest write since the last sync
}

// pendingWrite is an unsynced write, as the images of the whole sectors it
// touched right after it (what the page cache would write back).
type pendingWrite struct {
	seq uint64
	off int64  // sector-aligned
	img []byte // sectors from off; the last one may be short at end of file
}

func newDir() *node {
	return &node{dir: true, entries: map[string]*node{}, synced: map[string]*node{}}
}

// New returns an empty file system holding only the root directory "/".
func New() *FS { return &FS{root: newDir()} }

// SetHook sets the function called before every mutating operation (nil
// removes it). It runs on the goroutine making the operation, without any
// lock held; if it calls Freeze the operation itself fails with ErrFrozen.
func (fsys *FS) SetHook(hook func(Op)) {
	fsys.mu.Lock()
	fsys.hook = hook
	fsys.mu.Unlock()
}

// Freeze makes every later operation, on the FS and its open files, fail
// with ErrFrozen. CrashClone still works.
func (fsys *FS) Freeze() {
	fsys.mu.Lock()
	fsys.frozen = true
	fsys.mu.Unlock()
}

// Ops returns the number of mutating operations so far.
func (fsys *FS) Ops() int {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.nops
}

// before counts op, runs the hook, and reports whether the FS is frozen.
func (fsys *FS) before(op Op) error {
	fsys.mu.Lock()
	if fsys.frozen {
		fsys.mu.Unlock()
		return ErrFrozen
	}
	fsys.nops++
	op.N = fsys.nops
	hook := fsys.hook
	fsys.mu.Unlock()
	if hook != nil {
		hook(op)
	}
	return nil
}

// clean returns name as an absolute cleaned path and its components.
func clean(name string) (string, []string) {
	p := path.Clean("/" + name)
	if p == "/" {
		return p, nil
	}
	return p, strings.Split(p[1:], "/")
}

// lookup finds a path in the current tree; mu must be held.
func (fsys *FS) lookup(parts []string) *node {
	n := fsys.root
	for _, part := range parts {
		if !n.dir {
			return nil
		}
		n = n.entries[part]
		if n == nil {
			return nil
		}
	}
	return n
}

// parent finds the directory holding a path's last component; mu must be held.
func (fsys *FS) parent(op, p string, parts []string) (*node, string, error) {
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: p, Err: syscall.EINVAL}
	}
	d := fsys.lookup(parts[:len(parts)-1])
	if d == nil {
		return nil, "", &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: op, Path: p, Err: syscall.ENOTDIR}
	}
	return d, parts[len(parts)-1], nil
}

// Create creates name, which must not exist. The entry is durable after
// SyncDir of its directory.
func (fsys *FS) Create(name string) (vfs.File, error) {
	p, parts := clean(name)
	if err := fsys.before(Op{Kind: OpCreate, Path: p}); err != nil {
		return nil, &fs.PathError{Op: "create", Path: p, Err: err}
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return nil, &fs.PathError{Op: "create", Path: p, Err: ErrFrozen}
	}
	d, base, err := fsys.parent("create", p, parts)
	if err != nil {
		return nil, err
	}
	if d.entries[base] != nil {
		return nil, &fs.PathError{Op: "create", Path: p, Err: fs.ErrExist}
	}
	n := &node{}
	d.entries[base] = n
	return &file{fs: fsys, n: n, name: p, writable: true}, nil
}

// Open opens an existing file read-only.
func (fsys *FS) Open(name string) (vfs.File, error) { return fsys.open(name, false) }

// OpenReadWrite opens an existing file for reading and writing.
func (fsys *FS) OpenReadWrite(name string) (vfs.File, error) { return fsys.open(name, true) }

func (fsys *FS) open(name string, writable bool) (vfs.File, error) {
	p, parts := clean(name)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return nil, &fs.PathError{Op: "open", Path: p, Err: ErrFrozen}
	}
	n := fsys.lookup(parts)
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EISDIR}
	}
	return &file{fs: fsys, n: n, name: p, writable: writable}, nil
}

// Rename replaces newname by oldname. Both directories' entries are durable
// after SyncDir of each.
func (fsys *FS) Rename(oldname, newname string) error {
	op, oparts := clean(oldname)
	np, nparts := clean(newname)
	if err := fsys.before(Op{Kind: OpRename, Path: op, NewPath: np}); err != nil {
		return &os.LinkError{Op: "rename", Old: op, New: np, Err: err}
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return &os.LinkError{Op: "rename", Old: op, New: np, Err: ErrFrozen}
	}
	od, obase, err := fsys.parent("rename", op, oparts)
	if err != nil {
		return err
	}
	n := od.entries[obase]
	if n == nil {
		return &os.LinkError{Op: "rename", Old: op, New: np, Err: fs.ErrNotExist}
	}
	nd, nbase, err := fsys.parent("rename", np, nparts)
	if err != nil {
		return err
	}
	if old := nd.entries[nbase]; old != nil && old.dir && (!n.dir || len(old.entries) > 0) {
		return &os.LinkError{Op: "rename", Old: op, New: np, Err: syscall.EEXIST}
	}
	if op == np {
		return nil
	}
	delete(od.entries, obase)
	nd.entries[nbase] = n
	return nil
}

// Remove removes a file or an empty directory; durable after SyncDir.
func (fsys *FS) Remove(name string) error {
	p, parts := clean(name)
	if err := fsys.before(Op{Kind: OpRemove, Path: p}); err != nil {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return &fs.PathError{Op: "remove", Path: p, Err: ErrFrozen}
	}
	d, base, err := fsys.parent("remove", p, parts)
	if err != nil {
		return err
	}
	n := d.entries[base]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: p, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.entries) > 0 {
		return &fs.PathError{Op: "remove", Path: p, Err: syscall.ENOTEMPTY}
	}
	delete(d.entries, base)
	return nil
}

// MkdirAll creates a directory and its parents. Each new directory's entry
// is durable after SyncDir of its parent.
func (fsys *FS) MkdirAll(dir string) error {
	p, parts := clean(dir)
	fsys.mu.Lock()
	n := fsys.lookup(parts)
	frozen := fsys.frozen
	fsys.mu.Unlock()
	if frozen {
		return &fs.PathError{Op: "mkdir", Path: p, Err: ErrFrozen}
	}
	if n != nil {
		if !n.dir {
			return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if err := fsys.before(Op{Kind: OpMkdir, Path: p}); err != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return &fs.PathError{Op: "mkdir", Path: p, Err: ErrFrozen}
	}
	d := fsys.root
	for _, part := range parts {
		c := d.entries[part]
		if c == nil {
			c = newDir()
			d.entries[part] = c
		}
		if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
		}
		d = c
	}
	return nil
}

// List returns the names of a directory's current entries, sorted.
func (fsys *FS) List(dir string) ([]string, error) {
	p, parts := clean(dir)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: ErrFrozen}
	}
	d := fsys.lookup(parts)
	if d == nil {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	if !d.dir {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: syscall.ENOTDIR}
	}
	return sortedNames(d.entries), nil
}

func sortedNames(m map[string]*node) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Exists reports whether name exists.
func (fsys *FS) Exists(name string) (bool, error) {
	p, parts := clean(name)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return false, &fs.PathError{Op: "stat", Path: p, Err: ErrFrozen}
	}
	return fsys.lookup(parts) != nil, nil
}

// SyncDir makes the current entries of dir durable.
func (fsys *FS) SyncDir(dir string) error {
	p, parts := clean(dir)
	if err := fsys.before(Op{Kind: OpSyncDir, Path: p}); err != nil {
		return &fs.PathError{Op: "syncdir", Path: p, Err: err}
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.frozen {
		return &fs.PathError{Op: "syncdir", Path: p, Err: ErrFrozen}
	}
	d := fsys.lookup(parts)
	if d == nil {
		return &fs.PathError{Op: "syncdir", Path: p, Err: fs.ErrNotExist}
	}
	if !d.dir {
		return &fs.PathError{Op: "syncdir", Path: p, Err: syscall.ENOTDIR}
	}
	d.synced = make(map[string]*node, len(d.entries))
	for name, c := range d.entries {
		d.synced[name] = c
	}
	return nil
}

// ReadFile returns a file's current content (for tests).
func (fsys *FS) ReadFile(name string) ([]byte, error) {
	p, parts := clean(name)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	n := fsys.lookup(parts)
	if n == nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "read", Path: p, Err: syscall.EISDIR}
	}
	return n.data.bytes(0, n.data.size), nil
}

// file is an open file.
type file struct {
	fs       *FS
	n        *node
	name     string
	writable bool
	closed   bool // guarded by fs.mu
}

// check returns why the file cannot be used now; fs.mu must be held.
func (f *file) check(op string, write bool) error {
	switch {
	case f.fs.frozen:
		return &fs.PathError{Op: op, Path: f.name, Err: ErrFrozen}
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case write && !f.writable:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	n := f.n.data.readAt(p, off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EINVAL}
	}
	if err := f.fs.before(Op{Kind: OpWrite, Path: f.name, Off: off, Len: int64(len(p))}); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := f.n
	end := off + int64(len(p))
	n.data.writeAt(p, off)
	start := off / SectorSize * SectorSize
	stop := (end + SectorSize - 1) / SectorSize * SectorSize
	f.fs.wseq++
	n.pending = append(n.pending, pendingWrite{
		seq: f.fs.wseq,
		off: start,
		img: n.data.bytes(start, stop-start),
	})
	n.writtenEnd = max(n.writtenEnd, end)
	return len(p), nil
}

func (f *file) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *file) Preallocate(size int64) error {
	if err := f.fs.before(Op{Kind: OpPreallocate, Path: f.name, Len: size}); err != nil {
		return &fs.PathError{Op: "fallocate", Path: f.name, Err: err}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("fallocate", true); err != nil {
		return err
	}
	f.n.data.grow(size)
	return nil
}

// Datasync makes every write so far durable, and the length up to the end
// of the furthest write (not a length only Preallocate set).
func (f *file) Datasync() error { return f.sync(OpDatasync) }

// Sync makes the whole file durable, its length included.
func (f *file) Sync() error { return f.sync(OpSync) }

func (f *file) sync(kind OpKind) error {
	if err := f.fs.before(Op{Kind: kind, Path: f.name}); err != nil {
		return &fs.PathError{Op: strings.ToLower(kind.String()), Path: f.name, Err: err}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(strings.ToLower(kind.String()), false); err != nil {
		return err
	}
	// The disk gets the pending writes (not the current content: writes
	// dropped by DropUnsynced stay visible to reads but never reach it).
	n := f.n
	size := max(n.durable.size, n.writtenEnd)
	if kind == OpSync {
		size = n.data.size
	}
	for _, w := range n.pending {
		n.durable.writeAt(w.img, w.off)
	}
	if n.durable.size > size {
		n.durable = n.durable.prefix(size)
	}
	n.durable.grow(size)
	n.pending = nil
	n.writtenEnd = 0
	return nil
}

// DropUnsynced makes the writes to name since its last sync never reach
// the disk, though reads still see them: what the kernel does with a file's
// dirty pages when fdatasync fails (they are marked clean), so that a later
// successful sync does not make them durable. Fault injection calls it when
// it fails a Datasync or Sync.
func (fsys *FS) DropUnsynced(name string) error {
	p, parts := clean(name)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	n := fsys.lookup(parts)
	if n == nil || n.dir {
		return &fs.PathError{Op: "dropunsynced", Path: p, Err: fs.ErrNotExist}
	}
	n.pending = nil
	n.writtenEnd = 0
	return nil
}

func (f *file) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return 0, err
	}
	return f.n.data.size, nil
}
