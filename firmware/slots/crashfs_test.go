package slots

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

var errPowerCut = errors.New("crashfs: power cut")

// crashFS is an in-memory vfs.FS that models what survives a power cut:
// file bytes only up to the last Sync/Datasync, directory entries only up to
// the last SyncDir of their directory (directories themselves are durable at
// once). Once armed, after cutAfter mutating operations every operation fails
// with errPowerCut and changes nothing: the power is off.
type crashFS struct {
	mu       sync.Mutex
	dirs     map[string]bool
	cur      map[string]map[string]*inode // dir -> name -> inode
	durable  map[string]map[string]*inode
	ops      int
	cutAfter int
	armed    bool
}

type inode struct{ data, synced []byte }

func newCrashFS() *crashFS {
	return &crashFS{dirs: map[string]bool{"/": true}, cur: map[string]map[string]*inode{}, durable: map[string]map[string]*inode{}}
}

// crash returns the file system as a reboot after a power cut finds it.
func (c *crashFS) crash() *crashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := newCrashFS()
	for d := range c.dirs {
		n.dirs[d] = true
	}
	for d, ents := range c.durable {
		n.cur[d] = map[string]*inode{}
		n.durable[d] = map[string]*inode{}
		for name, ino := range ents {
			cp := &inode{data: append([]byte(nil), ino.synced...), synced: append([]byte(nil), ino.synced...)}
			n.cur[d][name] = cp
			n.durable[d][name] = cp
		}
	}
	return n
}

// mutate counts a mutating operation and reports whether the power is off.
func (c *crashFS) mutate() error {
	c.ops++
	if c.armed && c.ops > c.cutAfter {
		return errPowerCut
	}
	return nil
}

func (c *crashFS) lookup(name string) (*inode, bool) {
	ino, ok := c.cur[filepath.Dir(name)][filepath.Base(name)]
	return ino, ok
}

func (c *crashFS) Create(name string) (vfs.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return nil, err
	}
	d := filepath.Dir(name)
	if !c.dirs[d] {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrNotExist}
	}
	if _, ok := c.lookup(name); ok {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	}
	if c.cur[d] == nil {
		c.cur[d] = map[string]*inode{}
	}
	ino := &inode{}
	c.cur[d][filepath.Base(name)] = ino
	return &crashFile{fs: c, ino: ino, rw: true}, nil
}

func (c *crashFS) Open(name string) (vfs.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed && c.ops >= c.cutAfter {
		return nil, errPowerCut
	}
	ino, ok := c.lookup(name)
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &crashFile{fs: c, ino: ino}, nil
}

func (c *crashFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := c.Open(name)
	if err != nil {
		return nil, err
	}
	f.(*crashFile).rw = true
	return f, nil
}

func (c *crashFS) Rename(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	ino, ok := c.lookup(oldname)
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	delete(c.cur[filepath.Dir(oldname)], filepath.Base(oldname))
	d := filepath.Dir(newname)
	if c.cur[d] == nil {
		c.cur[d] = map[string]*inode{}
	}
	c.cur[d][filepath.Base(newname)] = ino
	return nil
}

func (c *crashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	if _, ok := c.lookup(name); !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(c.cur[filepath.Dir(name)], filepath.Base(name))
	return nil
}

func (c *crashFS) MkdirAll(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	for d := filepath.Clean(dir); !c.dirs[d]; d = filepath.Dir(d) {
		c.dirs[d] = true
	}
	return nil
}

func (c *crashFS) List(dir string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for n := range c.cur[filepath.Clean(dir)] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (c *crashFS) Exists(name string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed && c.ops >= c.cutAfter {
		return false, errPowerCut
	}
	_, ok := c.lookup(name)
	return ok || c.dirs[filepath.Clean(name)], nil
}

func (c *crashFS) SyncDir(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	d := filepath.Clean(dir)
	c.durable[d] = map[string]*inode{}
	for n, ino := range c.cur[d] {
		c.durable[d][n] = ino
	}
	return nil
}

type crashFile struct {
	fs  *crashFS
	ino *inode
	rw  bool
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutate(); err != nil {
		return 0, err
	}
	if !f.rw {
		return 0, errors.New("crashfs: file opened read-only")
	}
	if end := off + int64(len(p)); end > int64(len(f.ino.data)) {
		f.ino.data = append(f.ino.data, make([]byte, end-int64(len(f.ino.data)))...)
	}
	copy(f.ino.data[off:], p)
	return len(p), nil
}

func (f *crashFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutate(); err != nil {
		return err
	}
	f.ino.synced = append([]byte(nil), f.ino.data...)
	return nil
}

func (f *crashFile) Datasync() error { return f.Sync() }

func (f *crashFile) Preallocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutate(); err != nil {
		return err
	}
	if size > int64(len(f.ino.data)) {
		f.ino.data = append(f.ino.data, make([]byte, size-int64(len(f.ino.data)))...)
	}
	return nil
}

func (f *crashFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.ino.data)), nil
}

func (f *crashFile) Close() error { return nil }
