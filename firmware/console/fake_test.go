package console

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// fakeSystem is a hand-written System that records what the console asked.
type fakeSystem struct {
	mu        sync.Mutex
	status    Status
	testErr   error
	tested    []config.Camera
	storage   StorageStatus
	formatted []string
	networks  []config.Network
	applyErr  error
	clocks    []time.Time
	events    []Event
	reboots   int
	shutdowns int
}

func newFakeSystem() *fakeSystem {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	return &fakeSystem{
		status: Status{
			Cameras:       []CameraStatus{{Name: "lobby", State: StateRecording, Since: t0, Detail: "H264 1920x1080"}},
			RetentionHeld: 13*24*time.Hour + 4*time.Hour,
			Alarms:        []Alarm{{Severity: "warning", Source: "psu2", Message: "input lost", Since: t0}},
			Uptime:        3 * time.Hour,
		},
		storage: StorageStatus{Volume: "vol0", State: "ok", SizeBytes: 8 << 40, UsedBytes: 6 << 40, Oldest: t0.Add(-13 * 24 * time.Hour), RetentionHeld: 13 * 24 * time.Hour},
		events:  []Event{{Time: t0, Severity: "warning", Source: "psu2", Message: "input lost"}},
	}
}

func (f *fakeSystem) Status(context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

func (f *fakeSystem) Board(context.Context) (BoardStatus, error) {
	return BoardStatus{Model: "nvr-2u", WatchdogReset: true,
		PSUs: []PSUStatus{{Name: "psu1", Present: true, VIn: 230, POut: 180, TempC: 38}, {Name: "psu2", Present: true, Faults: []string{"VIN_UV_FAULT"}}},
		Bays: []BayStatus{{Name: "bay0", Present: true}, {Name: "bay1", Present: false, Fault: true}},
		Arrays: []ArrayStatus{{Name: "md0", Recording: true, Health: "degraded", Progress: 0.42, Drives: []DriveStatus{
			{Device: "sdb", Slot: 0, State: []string{"in_sync"}, ReadErrors: 7, IOErrors: 2},
			{Device: "nvme0n1", Slot: -1, State: []string{"faulty"}, IOErrors: -1},
		}}},
	}, nil
}

func (f *fakeSystem) TestCamera(_ context.Context, c config.Camera) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tested = append(f.tested, c)
	if f.testErr != nil {
		return "", f.testErr
	}
	return "H264 1920x1080 25 fps", nil
}

func (f *fakeSystem) Storage(context.Context) (StorageStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storage, nil
}

func (f *fakeSystem) FormatStorage(_ context.Context, vol string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vol != f.storage.Volume {
		return errors.New("wrong volume")
	}
	f.formatted = append(f.formatted, vol)
	return nil
}

func (f *fakeSystem) ApplyNetwork(_ context.Context, n config.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return f.applyErr
	}
	f.networks = append(f.networks, n)
	return nil
}

func (f *fakeSystem) SetClock(_ context.Context, t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clocks = append(f.clocks, t)
	return nil
}

func (f *fakeSystem) Firmware(context.Context) (FirmwareStatus, error) {
	return FirmwareStatus{Version: "1.2.3", BuildID: "abc123", Slot: "A", Standby: "1.2.2 (good)"}, nil
}

func (f *fakeSystem) Events(_ context.Context, limit int) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events[:min(limit, len(f.events))], nil
}

func (f *fakeSystem) Reboot(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboots++
	return nil
}

func (f *fakeSystem) Shutdown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdowns++
	return nil
}

// fakeSleeper records login delays instead of waiting.
type fakeSleeper struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (f *fakeSleeper) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delays = append(f.delays, d)
	return ctx.Err()
}

func (f *fakeSleeper) got() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.delays...)
}
