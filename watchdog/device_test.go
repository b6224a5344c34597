package watchdog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeSys is a hand-written fake of the watchdog system calls: a register
// file per op, errors per op, and a log of writes and closes.
type fakeSys struct {
	info       Info
	supportErr error
	regs       map[op]int32
	errs       map[op]error
	round      func(int32) int32 // what the driver programs for a set request
	writes     []string
	closes     int
	lastSet    map[op]int32
}

func newFakeSys() *fakeSys {
	return &fakeSys{
		info:    Info{Options: FlagSetTimeout | FlagMagicClose | FlagKeepAlivePing, Identity: "fake timer"},
		regs:    map[op]int32{opGetTimeout: 30, opGetTimeLeft: 29, opGetBootStatus: int32(FlagCardReset)},
		errs:    map[op]error{},
		lastSet: map[op]int32{},
	}
}

func (f *fakeSys) getSupport() (Info, error) { return f.info, f.supportErr }

func (f *fakeSys) ioctl(o op, arg *int32) error {
	if err := f.errs[o]; err != nil {
		return err
	}
	switch o {
	case opSetTimeout, opSetPreTimeout:
		f.lastSet[o] = *arg
		v := *arg
		if f.round != nil {
			v = f.round(v)
		}
		*arg = v
		f.regs[o-1] = v // the matching get op precedes each set op
	case opKeepAlive:
		f.regs[opKeepAlive]++
	default:
		*arg = f.regs[o]
	}
	return nil
}

func (f *fakeSys) write(p []byte) error { f.writes = append(f.writes, string(p)); return nil }
func (f *fakeSys) close() error         { f.closes++; return nil }

func TestDeviceOps(t *testing.T) {
	sys := newFakeSys()
	sys.round = func(v int32) int32 { return (v + 1) / 2 * 2 } // even seconds only
	sys.errs[opGetTimeLeft] = syscall.EOPNOTSUPP
	sys.errs[opSetPreTimeout] = syscall.ENOTTY
	sys.errs[opGetStatus] = syscall.EIO
	d := newDevice("/dev/fakedog", sys)

	info, err := d.Info()
	if err != nil || info.Identity != "fake timer" || info.Options&FlagMagicClose == 0 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if err := d.KeepAlive(); err != nil || sys.regs[opKeepAlive] != 1 {
		t.Fatalf("KeepAlive: %v, count %d", err, sys.regs[opKeepAlive])
	}
	got, err := d.SetTimeout(15 * time.Second)
	if err != nil || got != 16*time.Second || sys.lastSet[opSetTimeout] != 15 {
		t.Fatalf("SetTimeout(15s) = %v, %v (driver asked %d)", got, err, sys.lastSet[opSetTimeout])
	}
	if got, err := d.Timeout(); err != nil || got != 16*time.Second {
		t.Fatalf("Timeout = %v, %v", got, err)
	}
	boot, err := d.Boot()
	if err != nil || !boot.WatchdogReset || boot.Flags != FlagCardReset {
		t.Fatalf("Boot = %+v, %v", boot, err)
	}

	for _, tc := range []struct {
		name        string
		call        func() error
		unsupported bool
		wantErrno   error
	}{
		{"TimeLeft", func() error { _, err := d.TimeLeft(); return err }, true, syscall.EOPNOTSUPP},
		{"SetPreTimeout", func() error { _, err := d.SetPreTimeout(5 * time.Second); return err }, true, syscall.ENOTTY},
		{"Status", func() error { _, err := d.Status(); return err }, false, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("want error")
			}
			if errors.Is(err, ErrNotSupported) != tc.unsupported {
				t.Errorf("errors.Is(%v, ErrNotSupported) = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
			if !errors.Is(err, tc.wantErrno) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErrno)
			}
		})
	}
}

func TestDeviceKeepAliveByWrite(t *testing.T) {
	sys := newFakeSys()
	sys.errs[opKeepAlive] = syscall.EOPNOTSUPP // no WDIOF_KEEPALIVEPING
	d := newDevice("/dev/fakedog", sys)
	if err := d.KeepAlive(); err != nil {
		t.Fatal(err)
	}
	if len(sys.writes) != 1 || sys.writes[0] != "1" {
		t.Fatalf("writes %q, want one ping \"1\"", sys.writes)
	}
	sys.errs[opKeepAlive] = syscall.EIO
	if err := d.KeepAlive(); !errors.Is(err, syscall.EIO) || len(sys.writes) != 1 {
		t.Fatalf("EIO keepalive = %v, writes %q: want the error, no write", err, sys.writes)
	}
}

func TestDeviceTimeoutValidation(t *testing.T) {
	d := newDevice("/dev/fakedog", newFakeSys())
	for _, to := range []time.Duration{0, -time.Second, 1500 * time.Millisecond, 70000 * time.Second} {
		if _, err := d.SetTimeout(to); err == nil {
			t.Errorf("SetTimeout(%v) accepted", to)
		}
	}
}

func TestDeviceClose(t *testing.T) {
	for _, tc := range []struct {
		name       string
		close      func(*Device) error
		wantWrites int
	}{
		{"magic close disarms", (*Device).Close, 1},
		{"close armed", (*Device).CloseArmed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := newFakeSys()
			d := newDevice("/dev/fakedog", sys)
			if err := tc.close(d); err != nil {
				t.Fatal(err)
			}
			if err := tc.close(d); err != nil {
				t.Fatalf("second close: %v", err)
			}
			if len(sys.writes) != tc.wantWrites || sys.closes != 1 {
				t.Fatalf("writes %q closes %d; want %d writes, 1 close", sys.writes, sys.closes, tc.wantWrites)
			}
			if tc.wantWrites == 1 && sys.writes[0] != "V" {
				t.Fatalf("magic close wrote %q", sys.writes[0])
			}
			if err := d.KeepAlive(); !errors.Is(err, ErrClosed) {
				t.Fatalf("KeepAlive after close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestFlagsString(t *testing.T) {
	for _, tc := range []struct {
		f    Flags
		want string
	}{
		{0, "none"},
		{FlagCardReset, "card-reset"},
		{FlagSetTimeout | FlagMagicClose | 0x10000, "settimeout,magicclose,0x10000"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%#x.String() = %q, want %q", uint32(tc.f), got, tc.want)
		}
	}
}

// TestRealDevice exercises the kernel driver where one exists (the QEMU
// guest's i6300esb). Opening a watchdog arms it; the test disarms it with the
// magic close, which a nowayout kernel ignores (the machine would reset), so
// on such a kernel it runs only with NVR_REAL_WATCHDOG=1.
func TestRealDevice(t *testing.T) {
	path := os.Getenv("NVR_WATCHDOG_DEV")
	if path == "" {
		path = "/dev/watchdog0"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" && os.Getenv("NVR_REAL_WATCHDOG") == "1" {
			t.Fatalf("NVR_REAL_WATCHDOG=1 but %s: %v", path, err)
		}
		t.Skipf("no watchdog device here (%v); the QEMU image test runs this with i6300esb", err)
	}
	nowayout, err := os.ReadFile(filepath.Join("/sys/class/watchdog", filepath.Base(path), "nowayout"))
	if (err != nil || strings.TrimSpace(string(nowayout)) != "0") && os.Getenv("NVR_REAL_WATCHDOG") != "1" {
		t.Skipf("%s exists but cannot be disarmed after the test (nowayout %q, %v): set NVR_REAL_WATCHDOG=1 to test it anyway", path, nowayout, err)
	}
	d, err := Open(path)
	if errors.Is(err, syscall.EBUSY) && os.Getenv("NVR_REAL_WATCHDOG") != "1" {
		t.Skipf("%s is held by another process: %v", path, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Errorf("magic close: %v", err)
		}
	}()
	info, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("watchdog %s: %q options %v firmware %d", path, info.Identity, info.Options, info.Firmware)
	boot, err := d.Boot()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot status %v, watchdog reset: %v", boot.Flags, boot.WatchdogReset)
	if info.Options&FlagSetTimeout != 0 {
		got, err := d.SetTimeout(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if now, err := d.Timeout(); err != nil || now != got {
			t.Fatalf("Timeout after SetTimeout(20s)->%v = %v, %v", got, now, err)
		}
	}
	if err := d.KeepAlive(); err != nil {
		t.Fatal(err)
	}
	if left, err := d.TimeLeft(); err == nil {
		t.Logf("time left %v", left)
	} else if !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}
	if _, err := d.PreTimeout(); err != nil && !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}

	// A Guard pets the real device while its check passes.
	g, err := New(Options{Device: d, Timeout: 3 * time.Second, BootGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AddCheck("ok", func(time.Time) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := g.Status(); st.Pets < 2 || st.PetErrors != 0 {
		t.Fatalf("guard on %s: %+v", path, st)
	}
}
