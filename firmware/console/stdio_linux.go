package console

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stdio is a Terminal over a process's standard input and output (the
// demo's console): reads come from a non-blocking duplicate of the input
// descriptor, so Run can stop its reader with a deadline, and raw mode
// applies to the input terminal. Close restores the input's blocking mode
// (it is shared with the original descriptor) and closes the duplicate.
type Stdio struct {
	in        *os.File
	out       *os.File
	inFd      int
	closeOnce sync.Once
	closeErr  error
}

// NewStdio wraps in (usually os.Stdin) and out (usually os.Stdout).
func NewStdio(in, out *os.File) (*Stdio, error) {
	rc, err := in.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("console stdio: %w", err)
	}
	dup := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) { dup, dupErr = unix.Dup(int(fd)) }); err != nil {
		return nil, fmt.Errorf("console stdio: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("console stdio: dup input: %w", dupErr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("console stdio: non-blocking input: %w", err)
	}
	// A non-blocking descriptor makes os.NewFile use the runtime poller.
	return &Stdio{in: os.NewFile(uintptr(dup), in.Name()), out: out, inFd: dup}, nil
}

// Read implements io.Reader.
func (s *Stdio) Read(p []byte) (int, error) { return s.in.Read(p) }

// Write implements io.Writer.
func (s *Stdio) Write(p []byte) (int, error) { return s.out.Write(p) }

// SetReadDeadline lets Run stop its reader.
func (s *Stdio) SetReadDeadline(t time.Time) error { return s.in.SetReadDeadline(t) }

// SyscallConn gives Run the input terminal for raw mode.
func (s *Stdio) SyscallConn() (syscall.RawConn, error) { return s.in.SyscallConn() }

// Close restores blocking mode on the input and closes the duplicate; it is
// idempotent.
func (s *Stdio) Close() error {
	s.closeOnce.Do(func() {
		rc, err := s.in.SyscallConn()
		if err == nil {
			var nbErr error
			err = rc.Control(func(fd uintptr) { nbErr = unix.SetNonblock(int(fd), false) })
			err = errors.Join(err, nbErr)
		}
		s.closeErr = errors.Join(err, s.in.Close())
	})
	return s.closeErr
}
