//go:build linux

package watchdog

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open opens (and so arms) the watchdog device at path, e.g. DefaultPath.
// A missing device fails with an error wrapping os.ErrNotExist; a device held
// open by another process fails with EBUSY.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return newDevice(path, &fileSys{f: f}), nil
}

// fileSys issues the watchdog ioctls on an open device file.
type fileSys struct{ f *os.File }

var ioctlReq = [...]uint{
	opGetStatus:     unix.WDIOC_GETSTATUS,
	opGetBootStatus: unix.WDIOC_GETBOOTSTATUS,
	opGetTimeout:    unix.WDIOC_GETTIMEOUT,
	opSetTimeout:    unix.WDIOC_SETTIMEOUT,
	opGetPreTimeout: unix.WDIOC_GETPRETIMEOUT,
	opSetPreTimeout: unix.WDIOC_SETPRETIMEOUT,
	opGetTimeLeft:   unix.WDIOC_GETTIMELEFT,
	opKeepAlive:     unix.WDIOC_KEEPALIVE,
}

func (s *fileSys) rawIoctl(req uint, arg unsafe.Pointer) error {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		for {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
			if errno != unix.EINTR {
				return
			}
		}
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

func (s *fileSys) getSupport() (Info, error) {
	var wi unix.WatchdogInfo
	if err := s.rawIoctl(unix.WDIOC_GETSUPPORT, unsafe.Pointer(&wi)); err != nil {
		return Info{}, err
	}
	n := 0
	for n < len(wi.Identity) && wi.Identity[n] != 0 {
		n++
	}
	return Info{Options: Flags(wi.Options), Firmware: wi.Version, Identity: string(wi.Identity[:n])}, nil
}

func (s *fileSys) ioctl(o op, arg *int32) error {
	if int(o) >= len(ioctlReq) {
		return unix.ENOTTY
	}
	return s.rawIoctl(ioctlReq[o], unsafe.Pointer(arg))
}

func (s *fileSys) write(p []byte) error {
	_, err := s.f.Write(p)
	return err
}

func (s *fileSys) close() error { return s.f.Close() }

// isNotSupported reports whether err is an errno a driver returns for an
// operation it does not implement.
func isNotSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS)
}
