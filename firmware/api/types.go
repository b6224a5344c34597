package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Backend is what the API shows and serves. The appliance implements it.
type Backend interface {
	// Authenticate maps a bearer token to its holder, or ErrUnauthorized.
	Authenticate(ctx context.Context, token string) (Principal, error)
	// Status is the appliance's overall status.
	Status(ctx context.Context) (Status, error)
	// Cameras lists every configured camera with its live state.
	Cameras(ctx context.Context) ([]Camera, error)
	// Recordings lists the spans and gaps of a camera's footage in [from, to).
	// An unknown camera is ErrNotFound.
	Recordings(ctx context.Context, camera string, from, to time.Time) (Recordings, error)
	// Export renders [from, to) of a camera as one MP4 clip. An unknown
	// camera, or a range without footage, is ErrNotFound.
	Export(ctx context.Context, camera string, from, to time.Time) (Clip, error)
	// Subscribe delivers events until ctx is done; the channel is then closed.
	Subscribe(ctx context.Context) <-chan Event
	// Healthy reports whether recording is healthy, with the reasons if not.
	Healthy(ctx context.Context) (bool, []string)
}

// Clip is a prepared export: an MP4 whose size is known before any of it is
// written, and any byte range of which can be written on demand (so Range
// requests never render the whole clip).
type Clip interface {
	// Name is the suggested file name (Content-Disposition).
	Name() string
	// ModTime is the time of the clip's last frame (Last-Modified).
	ModTime() time.Time
	// Size is the clip's length in bytes.
	Size() int64
	// WriteRange writes bytes [off, off+n) of the clip to w.
	WriteRange(ctx context.Context, w io.Writer, off, n int64) error
}

// Errors a Backend returns for conditions the API maps to a status code.
var (
	ErrUnauthorized = errors.New("invalid or missing API token")
	ErrNotFound     = errors.New("not found")
)

// Principal is the holder of an API token.
type Principal struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Status is the appliance's overall status (GET /api/v1/status).
type Status struct {
	Hostname   string        `json:"hostname"`
	Version    string        `json:"version"`
	Uptime     Duration      `json:"uptime"`
	Healthy    bool          `json:"healthy"`
	Problems   []string      `json:"problems"`
	Cameras    CameraCounts  `json:"cameras"`
	Storage    StorageStatus `json:"storage"`
	Alarms     []Alarm       `json:"alarms"`
	Components []Component   `json:"components"`
	Board      *BoardStatus  `json:"board,omitempty"`
	Time       *TimeStatus   `json:"time,omitempty"`
}

// TimeStatus is the appliance's clock and its NTP synchronisation (absent
// without a configuration).
type TimeStatus struct {
	Now        time.Time `json:"now"`
	NTPServers []string  `json:"ntp_servers"`
	// Synced: an NTP server answered within the last 15 minutes.
	Synced  bool   `json:"synced"`
	Server  string `json:"server,omitempty"`
	Stratum int    `json:"stratum,omitempty"`
	// Offset is the last measured offset of the server's clock from ours
	// before correction (positive: ours was behind).
	Offset   Duration  `json:"offset"`
	LastSync time.Time `json:"last_sync,omitzero"`
	// LastError is why the last attempt failed.
	LastError string `json:"last_error,omitempty"`
	// Adjusting is how the clock is corrected: step, slew, or monitor (the
	// host owns the clock; measured only).
	Adjusting string `json:"adjusting"`
}

// BoardStatus is the appliance hardware's health: PSUs, drive bays and md
// arrays (absent when no board profile is in use).
type BoardStatus struct {
	Model         string        `json:"model"`
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
	InputV  float64  `json:"input_volts"`
	OutputW float64  `json:"output_watts"`
	TempC   float64  `json:"temperature_celsius"`
	Error   string   `json:"error,omitempty"`
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
	Name      string        `json:"name"`
	Recording bool          `json:"recording_volume"`
	Health    string        `json:"health"`
	Progress  float64       `json:"sync_progress"`
	Error     string        `json:"error,omitempty"`
	Members   []DriveStatus `json:"members"`
}

// DriveStatus is one member drive of an md array.
type DriveStatus struct {
	Device string   `json:"device"`
	Slot   int      `json:"slot"` // -1: none (spare, faulty)
	State  []string `json:"state"`
	// ReadErrors were corrected by md from redundancy; IOErrors are the
	// SCSI layer's failed commands (-1: the drive has no such counter).
	ReadErrors int64 `json:"read_errors"`
	IOErrors   int64 `json:"io_errors"`
}

// CameraCounts summarises camera states.
type CameraCounts struct {
	Total     int `json:"total"`
	Recording int `json:"recording"`
	Offline   int `json:"offline"`
}

// StorageStatus summarises the ring store.
type StorageStatus struct {
	CapacityBytes int64     `json:"capacity_bytes"`
	UsedBytes     int64     `json:"used_bytes"`
	Oldest        time.Time `json:"oldest"`
	Retention     Duration  `json:"retention"`
	WriteBytesSec float64   `json:"write_bytes_per_second"`
	CommitP99     Duration  `json:"commit_latency_p99"`
	SuspectSlots  int       `json:"suspect_slots"`
}

// Alarm is an active alarm.
type Alarm struct {
	Time     time.Time `json:"time"`
	Source   string    `json:"source"`
	Severity string    `json:"severity"`
	Message  string    `json:"message"`
}

// Component is the state of one supervised part of the appliance.
type Component struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

// Camera is a configured camera with its live state (GET /api/v1/cameras).
type Camera struct {
	Name           string    `json:"name"`
	URL            string    `json:"url"` // credentials masked
	State          string    `json:"state"`
	LastError      string    `json:"last_error,omitempty"`
	Codec          string    `json:"codec,omitempty"`
	Audio          string    `json:"audio,omitempty"`
	Width          int       `json:"width,omitempty"`
	Height         int       `json:"height,omitempty"`
	FPS            float64   `json:"fps,omitempty"`
	BitrateBPS     float64   `json:"bitrate_bps,omitempty"`
	LastFrame      time.Time `json:"last_frame"`
	Reconnects     int       `json:"reconnects"`
	FramesRecorded int64     `json:"frames_recorded"`
	FramesDropped  int64     `json:"frames_dropped"`
}

// Recordings are the spans and gaps of one camera (GET /api/v1/recordings).
type Recordings struct {
	Camera string    `json:"camera"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Spans  []Span    `json:"spans"`
	Gaps   []Gap     `json:"gaps"`
}

// Span is a time range of continuous footage.
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Gap is a time range without footage and why.
type Gap struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Cause string    `json:"cause"`
	// Ongoing: the camera is down now; the gap runs to the search's end
	// (or now) and grows until footage resumes.
	Ongoing bool `json:"ongoing,omitempty"`
}

// Event is one entry of the event stream (GET /api/v1/events, SSE).
type Event struct {
	ID       uint64            `json:"id"`
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`
	Severity string            `json:"severity"`
	Source   string            `json:"source"`
	Message  string            `json:"message"`
	Data     map[string]string `json:"data,omitempty"`
}

// Duration is a time.Duration that marshals as seconds (a JSON number).
type Duration time.Duration

// MarshalJSON writes the duration as seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(formatSeconds(time.Duration(d))), nil
}

// UnmarshalJSON reads a duration written as seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want seconds as a number: %w", err)
	}
	*d = Duration(time.Duration(secs * float64(time.Second)))
	return nil
}
