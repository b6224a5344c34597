package console

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// System is what the console needs from the running appliance. The lead
// implements it over the recorder, the ring store, the network applier,
// the firmware updater and the power controls. Every method gets the
// command's context (cancelled when the session ends) and should return
// within seconds; errors are shown to the operator on one line.
type System interface {
	// Status is the live summary behind "show status".
	Status(ctx context.Context) (Status, error)
	// TestCamera connects to cam (URL, credentials, transport) as the
	// recorder would, without saving anything, and describes what it found
	// (e.g. "H264 1920x1080 25 fps, AAC 16 kHz"), or why it failed.
	TestCamera(ctx context.Context, cam config.Camera) (string, error)
	// Storage describes the recording volume for "storage status".
	Storage(ctx context.Context) (StorageStatus, error)
	// FormatStorage erases and re-formats the recording volume named volume
	// (the name the operator typed to confirm; refuse any other).
	FormatStorage(ctx context.Context, volume string) error
	// ApplyNetwork applies n to the links now (netlink); the console calls it
	// after validation and before saving n, and saves only when it succeeds.
	ApplyNetwork(ctx context.Context, n config.Network) error
	// SetClock sets the system and hardware clocks.
	SetClock(ctx context.Context, t time.Time) error
	// Firmware describes the running and standby firmware slots.
	Firmware(ctx context.Context) (FirmwareStatus, error)
	// Board describes the hardware for "show board": PSUs, drive bays and md
	// arrays of the board profile (ErrNoBoard without one).
	Board(ctx context.Context) (BoardStatus, error)
	// Events returns up to limit recent system events (alarms raised and
	// cleared, camera sessions, store recovery), newest first.
	Events(ctx context.Context, limit int) ([]Event, error)
	// Reboot and Shutdown stop recording cleanly, then restart or power off
	// the appliance. They may return before it happens.
	Reboot(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Status is the live state of the recorder.
type Status struct {
	// Cameras has one entry per configured camera.
	Cameras []CameraStatus `json:"cameras"`
	// RetentionHeld is the age of the oldest footage still on the volume.
	RetentionHeld time.Duration `json:"retention_held_ns"`
	// Alarms are the active alarms.
	Alarms []Alarm `json:"alarms"`
	// Uptime is how long nvrd has been running.
	Uptime time.Duration `json:"uptime_ns"`
}

// Camera states as shown by the console; the recorder may use others.
const (
	StateRecording  = "recording"
	StateConnecting = "connecting"
	StateFailed     = "failed"
	StateDisabled   = "disabled"
)

// CameraStatus is one camera's live state.
type CameraStatus struct {
	Name string `json:"name"`
	// State is StateRecording, StateConnecting, StateFailed, StateDisabled or
	// another short word.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Detail is the last error or a short description ("H264 1080p 4 Mb/s").
	Detail string `json:"detail,omitempty"`
}

// Alarm is an active alarm.
type Alarm struct {
	Severity string    `json:"severity"` // "critical", "warning"
	Source   string    `json:"source"`   // "store", "camera:lobby", "psu1"...
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
}

// StorageStatus describes the recording volume.
type StorageStatus struct {
	// Volume is the volume's name, which the operator types to confirm a
	// format.
	Volume    string `json:"volume"`
	State     string `json:"state"` // "ok", "degraded", "unformatted", ...
	SizeBytes int64  `json:"size_bytes"`
	UsedBytes int64  `json:"used_bytes"`
	// Oldest is the time of the oldest footage held (zero: none).
	Oldest        time.Time     `json:"oldest"`
	RetentionHeld time.Duration `json:"retention_held_ns"`
	Detail        string        `json:"detail,omitempty"`
}

// FirmwareStatus describes the firmware slots.
type FirmwareStatus struct {
	Version string `json:"version"`
	BuildID string `json:"build_id"`
	// Slot is the running slot ("A" or "B"); Standby describes the other.
	Slot    string `json:"slot"`
	Standby string `json:"standby,omitempty"`
	// Trial is true while a freshly installed firmware runs its trial boot.
	Trial bool `json:"trial"`
}

// Event is one entry of the system event log.
type Event struct {
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Source   string    `json:"source"`
	Message  string    `json:"message"`
}

// ConfigStore is what the console needs of the configuration;
// *config.Store implements it.
type ConfigStore interface {
	Site() (config.Site, error)
	Apply(actor string, m config.Mutation) (config.Change, error)
	Audit(before uint64, limit int) ([]config.AuditEntry, error)
	Authenticate(name, password string) (config.User, error)
	EnsureAdmin(actor string) (password string, created bool, err error)
	Export(w io.Writer) error
	Import(actor, source string, r io.Reader) (config.Change, error)
}

// ErrNoBoard: the appliance runs without a board profile (demo, tests).
var ErrNoBoard = errors.New("no board profile in use (nvrd run --board)")

// BoardStatus is the hardware's health for "show board".
type BoardStatus struct {
	Model string `json:"model"`
	// WatchdogReset is set when the last reset was done by the watchdog.
	WatchdogReset bool          `json:"watchdog_reset"`
	PSUs          []PSUStatus   `json:"psus"`
	Bays          []BayStatus   `json:"bays"`
	Arrays        []ArrayStatus `json:"arrays"`
}

// PSUStatus is one power supply.
type PSUStatus struct {
	Name    string   `json:"name"`
	Present bool     `json:"present"`
	Faults  []string `json:"faults"`
	VIn     float64  `json:"input_volts"`
	POut    float64  `json:"output_watts"`
	TempC   float64  `json:"temperature_celsius"`
	Err     string   `json:"error,omitempty"`
}

// BayStatus is one drive bay.
type BayStatus struct {
	Name    string `json:"name"`
	Present bool   `json:"present"`
	Fault   bool   `json:"fault_led"`
	Locate  bool   `json:"locate_led"`
}

// ArrayStatus is one md RAID array.
type ArrayStatus struct {
	Name      string  `json:"name"`
	Recording bool    `json:"recording_volume"`
	Health    string  `json:"health"`
	Progress  float64 `json:"sync_progress"` // 0..1, -1 when no sync runs
	Err       string  `json:"error,omitempty"`
	// Drives are the array's members.
	Drives []DriveStatus `json:"drives"`
}

// DriveStatus is one member drive of an array.
type DriveStatus struct {
	Device string   `json:"device"`
	Slot   int      `json:"slot"` // -1: none (spare, faulty)
	State  []string `json:"state"`
	// ReadErrors were corrected by md; IOErrors are the SCSI layer's
	// failed commands (-1: no such counter).
	ReadErrors int64 `json:"read_errors"`
	IOErrors   int64 `json:"io_errors"`
}
