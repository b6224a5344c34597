// Package vfs is the file-system seam of the ring store: every byte the store
// reads or writes, and every durability barrier it relies on, goes through FS
// and File. Default is the operating system; package vfs/memfs (crash tests)
// and the fault wrappers implement the same contract.
//
// Durability contract, per method (what survives a power cut):
//   - File.WriteAt: nothing, until a later Datasync or Sync on the same file
//     returns nil. Writes are not atomic: after a crash any subset of the
//     512-byte sectors of an unsynced write may hold new, old or zero bytes.
//   - File.Datasync: every byte written to the file before the call, and the
//     file's size. A non-nil error means the written data is in an unknown
//     state and must never be assumed durable, even if a retry returns nil
//     (the kernel may have dropped the dirty pages).
//   - File.Preallocate: reserves blocks; durable after Sync.
//   - FS.Create, Rename, Remove: the directory entry changes are durable only
//     after SyncDir on the parent directory returns nil.
//
// Concurrency: an FS may be used from many goroutines. A File's ReadAt may run
// concurrently with WriteAt on disjoint ranges; the store serialises writers.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Preallocate reserves size bytes for the file (fallocate), extending its
	// length, so that later writes inside it never fail for lack of space.
	Preallocate(size int64) error
	// Datasync makes the file's written data durable (fdatasync).
	Datasync() error
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// Size returns the file's current length in bytes.
	Size() (int64, error)
}

// FS is the set of file-system operations the store uses.
type FS interface {
	// Create creates name, which must not exist, open for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing.
	OpenReadWrite(name string) (File, error)
	// Rename atomically replaces newname by oldname.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string) error
	// List returns the names (not paths) of a directory's entries, sorted.
	List(dir string) ([]string, error)
	// Exists reports whether name exists.
	Exists(name string) (bool, error)
	// SyncDir makes the entries of directory dir durable.
	SyncDir(dir string) error
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

type osFile struct{ f *os.File }

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenReadWrite(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, 0o750) }

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) Exists(name string) (bool, error) {
	_, err := os.Stat(name)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return fmt.Errorf("open directory %s for sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func (o osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Close() error                             { return o.f.Close() }
func (o osFile) Sync() error                              { return o.f.Sync() }

func (o osFile) Datasync() error {
	for {
		err := unix.Fdatasync(int(o.f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: o.f.Name(), Err: err}
		}
		return nil
	}
}

func (o osFile) Preallocate(size int64) error {
	for {
		err := unix.Fallocate(int(o.f.Fd()), 0, 0, size)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EOPNOTSUPP {
			// Some file systems (tmpfs on old kernels, 9p) cannot fallocate:
			// fall back to extending the file; space is then not reserved.
			return o.f.Truncate(size)
		}
		if err != nil {
			return &os.PathError{Op: "fallocate", Path: o.f.Name(), Err: err}
		}
		return nil
	}
}

func (o osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
