package faultfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// OpKind names an operation of vfs.FS or vfs.File.
type OpKind uint8

// Every operation the wrapper sees.
const (
	OpCreate OpKind = iota + 1
	OpOpen
	OpOpenReadWrite
	OpRename
	OpRemove
	OpMkdirAll
	OpList
	OpExists
	OpSyncDir
	OpReadAt
	OpWriteAt
	OpClose
	OpPreallocate
	OpDatasync
	OpSync
	OpSize
	numKinds
)

var kindNames = [numKinds]string{"", "create", "open", "openrw", "rename", "remove", "mkdirall",
	"list", "exists", "syncdir", "read", "write", "close", "fallocate", "fdatasync", "fsync", "stat"}

// String returns the operation's name as used in injected errors.
func (k OpKind) String() string {
	if k > 0 && k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op describes an operation about to happen.
type Op struct {
	Kind OpKind
	// Path is the file or directory as the caller named it (Rename: the old name).
	Path string
	// NewPath is Rename's new name.
	NewPath string
	// Off and Len are ReadAt's and WriteAt's offset and length;
	// Preallocate's size is Len.
	Off, Len int64
}

// Kinds matches operations of the given kinds.
func Kinds(kinds ...OpKind) func(Op) bool {
	return func(op Op) bool {
		for _, k := range kinds {
			if op.Kind == k {
				return true
			}
		}
		return false
	}
}

// Glob matches operations whose Path's base name matches pattern (path.Match
// syntax, e.g. "*.slot").
func Glob(pattern string) func(Op) bool {
	return func(op Op) bool {
		ok, _ := path.Match(pattern, path.Base(op.Path))
		return ok
	}
}

// All matches operations every predicate matches.
func All(preds ...func(Op) bool) func(Op) bool {
	return func(op Op) bool {
		for _, p := range preds {
			if !p(op) {
				return false
			}
		}
		return true
	}
}

// Mutating matches the operations that change the file system or make it durable.
func Mutating(op Op) bool {
	switch op.Kind {
	case OpCreate, OpRename, OpRemove, OpMkdirAll, OpSyncDir, OpWriteAt, OpPreallocate, OpDatasync, OpSync:
		return true
	}
	return false
}

// FS wraps an inner vfs.FS with fault injection.
type FS struct {
	inner vfs.FS

	mu       sync.Mutex
	rules    []*rule
	hang     func(Op) bool
	release  chan struct{} // closed by Release
	hung     int           // operations blocked now
	hungCh   chan struct{} // closed and replaced whenever hung grows
	counts   [numKinds]int
	injected int
	onFault  func(Op, error)
}

// rule fails matching operations: the nth from its installation when nth >
// 0 (then it is spent), or every one when nth == 0.
type rule struct {
	pred func(Op) bool
	err  error // errDropped: a Drop rule
	nth  int
	seen int
}

// errDropped tells a droppable operation to report success without
// reaching the inner FS.
var errDropped = errors.New("faultfs: dropped")

// droppable reports whether Drop applies to kind.
func droppable(kind OpKind) bool {
	return kind == OpWriteAt || kind == OpDatasync || kind == OpSync || kind == OpSyncDir
}

// New wraps inner; with no rules set it passes everything through.
func New(inner vfs.FS) *FS {
	return &FS{inner: inner, release: make(chan struct{}), hungCh: make(chan struct{})}
}

// Fail makes every later operation matching pred fail with err, without
// reaching the inner FS, until Clear.
func (f *FS) Fail(pred func(Op) bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{pred: pred, err: err})
}

// FailNth makes the nth operation matching pred from now on (n >= 1) fail
// with err, once.
func (f *FS) FailNth(n int, pred func(Op) bool, err error) {
	if n < 1 {
		panic(fmt.Sprintf("faultfs: FailNth(%d): n must be >= 1", n))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{pred: pred, err: err, nth: n})
}

// Drop makes every later WriteAt, Datasync, Sync and SyncDir matching pred
// report success without reaching the inner FS, until Clear: a disk that
// ignores cache flushes, or loses writes. Other operations are not dropped.
func (f *FS) Drop(pred func(Op) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{pred: func(op Op) bool { return droppable(op.Kind) && pred(op) }, err: errDropped})
}

// Hang makes every later operation matching pred block, before reaching the
// inner FS, until Release. It replaces an earlier Hang predicate.
func (f *FS) Hang(pred func(Op) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = pred
}

// Release stops hanging and lets every blocked operation proceed to the
// inner FS. Calling it with nothing hung is harmless.
func (f *FS) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = nil
	close(f.release)
	f.release = make(chan struct{})
}

// Clear removes every failure rule and releases hung operations.
func (f *FS) Clear() {
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()
	f.Release()
}

// WaitHung blocks until at least n operations are hung, or ctx is done.
func (f *FS) WaitHung(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		hung, ch := f.hung, f.hungCh
		f.mu.Unlock()
		if hung >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("faultfs: waiting for %d hung operations (%d now): %w", n, hung, ctx.Err())
		}
	}
}

// Hung returns the number of operations blocked now.
func (f *FS) Hung() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hung
}

// Count returns how many operations of kind were attempted (failed and
// hung ones included).
func (f *FS) Count(kind OpKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if kind >= numKinds {
		return 0
	}
	return f.counts[kind]
}

// Injected returns how many operations failed by a rule.
func (f *FS) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// before counts op, hangs it if asked, and returns the error to inject, if
// any (wrapped as a *fs.PathError naming the operation and path).
func (f *FS) before(op Op) error {
	f.mu.Lock()
	if op.Kind < numKinds {
		f.counts[op.Kind]++
	}
	if f.hang != nil && f.hang(op) {
		release := f.release
		f.hung++
		close(f.hungCh)
		f.hungCh = make(chan struct{})
		f.mu.Unlock()
		<-release
		f.mu.Lock()
		f.hung--
	}
	// Every matching rule counts the operation; the first one due fires.
	var fire *rule
	keep := f.rules[:0]
	for _, r := range f.rules {
		if r.pred(op) {
			r.seen++
			if fire == nil && (r.nth == 0 || r.seen == r.nth) {
				fire = r
				if r.nth > 0 {
					continue // spent
				}
			}
		}
		keep = append(keep, r)
	}
	clear(f.rules[len(keep):])
	f.rules = keep
	if fire == nil {
		f.mu.Unlock()
		return nil
	}
	f.injected++
	onFault := f.onFault
	f.mu.Unlock()
	err := errDropped
	if fire.err != errDropped {
		err = &fs.PathError{Op: op.Kind.String(), Path: op.Path, Err: fire.err}
	}
	if onFault != nil {
		onFault(op, dropped(err))
	}
	return err
}

// SetOnFault sets a function called, on the operation's goroutine and
// without locks held, after a rule failed (err != nil) or dropped (err ==
// nil) an operation; nil removes it. A test over memfs uses it to drop the
// file's unsynced writes when a Datasync fails, as the kernel does.
func (f *FS) SetOnFault(fn func(op Op, err error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onFault = fn
}

// dropped turns errDropped into success.
func dropped(err error) error {
	if err == errDropped {
		return nil
	}
	return err
}

// Create implements vfs.FS.
func (f *FS) Create(name string) (vfs.File, error) {
	if err := f.before(Op{Kind: OpCreate, Path: name}); err != nil {
		return nil, err
	}
	inner, err := f.inner.Create(name)
	return f.wrap(name, inner, err)
}

// Open implements vfs.FS.
func (f *FS) Open(name string) (vfs.File, error) {
	if err := f.before(Op{Kind: OpOpen, Path: name}); err != nil {
		return nil, err
	}
	inner, err := f.inner.Open(name)
	return f.wrap(name, inner, err)
}

// OpenReadWrite implements vfs.FS.
func (f *FS) OpenReadWrite(name string) (vfs.File, error) {
	if err := f.before(Op{Kind: OpOpenReadWrite, Path: name}); err != nil {
		return nil, err
	}
	inner, err := f.inner.OpenReadWrite(name)
	return f.wrap(name, inner, err)
}

func (f *FS) wrap(name string, inner vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &file{fs: f, inner: inner, name: name}, nil
}

// Rename implements vfs.FS.
func (f *FS) Rename(oldname, newname string) error {
	if err := f.before(Op{Kind: OpRename, Path: oldname, NewPath: newname}); err != nil {
		return err
	}
	return f.inner.Rename(oldname, newname)
}

// Remove implements vfs.FS.
func (f *FS) Remove(name string) error {
	if err := f.before(Op{Kind: OpRemove, Path: name}); err != nil {
		return err
	}
	return f.inner.Remove(name)
}

// MkdirAll implements vfs.FS.
func (f *FS) MkdirAll(dir string) error {
	if err := f.before(Op{Kind: OpMkdirAll, Path: dir}); err != nil {
		return err
	}
	return f.inner.MkdirAll(dir)
}

// List implements vfs.FS.
func (f *FS) List(dir string) ([]string, error) {
	if err := f.before(Op{Kind: OpList, Path: dir}); err != nil {
		return nil, err
	}
	return f.inner.List(dir)
}

// Exists implements vfs.FS.
func (f *FS) Exists(name string) (bool, error) {
	if err := f.before(Op{Kind: OpExists, Path: name}); err != nil {
		return false, err
	}
	return f.inner.Exists(name)
}

// SyncDir implements vfs.FS.
func (f *FS) SyncDir(dir string) error {
	if err := f.before(Op{Kind: OpSyncDir, Path: dir}); err != nil {
		return dropped(err)
	}
	return f.inner.SyncDir(dir)
}

type file struct {
	fs    *FS
	inner vfs.File
	name  string
}

func (w *file) ReadAt(p []byte, off int64) (int, error) {
	if err := w.fs.before(Op{Kind: OpReadAt, Path: w.name, Off: off, Len: int64(len(p))}); err != nil {
		return 0, err
	}
	return w.inner.ReadAt(p, off)
}

func (w *file) WriteAt(p []byte, off int64) (int, error) {
	if err := w.fs.before(Op{Kind: OpWriteAt, Path: w.name, Off: off, Len: int64(len(p))}); err != nil {
		if err == errDropped {
			return len(p), nil
		}
		return 0, err
	}
	return w.inner.WriteAt(p, off)
}

func (w *file) Close() error {
	if err := w.fs.before(Op{Kind: OpClose, Path: w.name}); err != nil {
		// The inner file is closed anyway, as a failed close(2) still
		// releases the descriptor.
		_ = w.inner.Close()
		return err
	}
	return w.inner.Close()
}

func (w *file) Preallocate(size int64) error {
	if err := w.fs.before(Op{Kind: OpPreallocate, Path: w.name, Len: size}); err != nil {
		return err
	}
	return w.inner.Preallocate(size)
}

func (w *file) Datasync() error {
	if err := w.fs.before(Op{Kind: OpDatasync, Path: w.name}); err != nil {
		return dropped(err)
	}
	return w.inner.Datasync()
}

func (w *file) Sync() error {
	if err := w.fs.before(Op{Kind: OpSync, Path: w.name}); err != nil {
		return dropped(err)
	}
	return w.inner.Sync()
}

func (w *file) Size() (int64, error) {
	if err := w.fs.before(Op{Kind: OpSize, Path: w.name}); err != nil {
		return 0, err
	}
	return w.inner.Size()
}

// String describes the op for test messages.
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", o.Kind, o.Path)
	if o.NewPath != "" {
		fmt.Fprintf(&b, " -> %s", o.NewPath)
	}
	if o.Len != 0 || o.Off != 0 {
		fmt.Fprintf(&b, " [%d,+%d)", o.Off, o.Len)
	}
	return b.String()
}
