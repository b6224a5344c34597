package appliance

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/netconf"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// system is what the console sees of the running appliance.
type system struct{ a *App }

var _ console.System = (*system)(nil)

func (s *system) Status(context.Context) (console.Status, error) {
	a := s.a
	out := console.Status{Uptime: a.opts.Now().Sub(a.started), Cameras: []console.CameraStatus{}, Alarms: []console.Alarm{}}
	for _, al := range a.hub.Alarms() {
		out.Alarms = append(out.Alarms, console.Alarm{Severity: string(al.Severity), Source: al.Source, Message: al.Message, Since: al.Time})
	}
	rec, err := a.current()
	if err != nil {
		return out, nil // alarms say why nothing records
	}
	live := map[string]bool{}
	for _, cs := range rec.recorder.Statuses() {
		live[cs.Name] = true
		out.Cameras = append(out.Cameras, console.CameraStatus{Name: cs.Name, State: consoleState(cs.State), Since: cs.Since, Detail: cameraDetail(cs)})
	}
	if a.cfg != nil {
		if site, err := a.cfg.Site(); err == nil {
			for _, c := range site.Cameras {
				if !c.Enabled && !live[c.Name] {
					out.Cameras = append(out.Cameras, console.CameraStatus{Name: c.Name, State: console.StateDisabled})
				}
			}
		}
	}
	if oldest := oldestFootage(rec.store.Stats()); !oldest.IsZero() {
		out.RetentionHeld = a.opts.Now().Sub(oldest)
	}
	return out, nil
}

func consoleState(s recorder.State) string {
	switch s {
	case recorder.StateRecording:
		return console.StateRecording
	case recorder.StateIdle, recorder.StateConnecting:
		return console.StateConnecting
	case recorder.StateBackoff, recorder.StateError:
		return console.StateFailed
	}
	return s.String()
}

// cameraDetail is the last error of a failing camera, else what it records.
func cameraDetail(cs recorder.Status) string {
	if cs.State != recorder.StateRecording && cs.LastError != "" {
		return cs.LastError
	}
	var parts []string
	for _, t := range cs.Tracks {
		if t.Codec.IsVideo() {
			parts = append(parts, fmt.Sprintf("%s %dx%d", t.Codec, t.Width, t.Height))
		} else {
			parts = append(parts, t.Codec.String())
		}
	}
	if cs.Bitrate > 0 {
		parts = append(parts, fmt.Sprintf("%.1f Mb/s", cs.Bitrate/1e6))
	}
	return strings.Join(parts, ", ")
}

func oldestFootage(st ringstore.Stats) time.Time {
	var oldest time.Time
	for _, s := range st.Streams {
		if !s.First.IsZero() && (oldest.IsZero() || s.First.Before(oldest)) {
			oldest = s.First
		}
	}
	return oldest
}

// volumeName is what an operator types to confirm a format: "vol-" and the
// first 8 characters of the volume's identity.
func volumeName(id string) string {
	if len(id) > 8 {
		id = id[:8]
	}
	return "vol-" + id
}

func (s *system) Storage(context.Context) (console.StorageStatus, error) {
	a := s.a
	dir := a.dataDir()
	rec, err := a.current()
	if err != nil {
		st := console.StorageStatus{State: "unavailable", Detail: err.Error()}
		if info, ierr := ringstore.ReadVolumeInfo(dir); ierr == nil {
			st.Volume, st.SizeBytes = volumeName(info.ID), info.SlotSize*int64(info.Slots)
		} else {
			st.State, st.Volume, st.Detail = "unformatted", "vol-new", ierr.Error()
		}
		return st, nil
	}
	stats := rec.store.Stats()
	out := console.StorageStatus{Volume: volumeName(rec.store.Volume().ID), State: "ok", SizeBytes: stats.Capacity, UsedBytes: stats.Used,
		Oldest: oldestFootage(stats), Detail: fmt.Sprintf("%s: %d slots of %d MiB, commit p99 %s", dir, stats.Slots, stats.SlotSize>>20, stats.CommitLatencyP99.Round(time.Millisecond))}
	if !out.Oldest.IsZero() {
		out.RetentionHeld = a.opts.Now().Sub(out.Oldest)
	}
	if len(stats.SuspectSlots) > 0 {
		out.State = "degraded"
		out.Detail += fmt.Sprintf("; suspect slots %v", stats.SuspectSlots)
	}
	return out, nil
}

func (s *system) FormatStorage(ctx context.Context, volume string) error {
	want, err := s.Storage(ctx)
	if err != nil {
		return err
	}
	if volume != want.Volume {
		return fmt.Errorf("volume name %q does not match %q: nothing formatted", volume, want.Volume)
	}
	return s.a.requestRestart(ctx, restartRequest{reason: "format of the recording volume", format: true})
}

func (s *system) ApplyNetwork(_ context.Context, n config.Network) error {
	if s.a.opts.Network == nil {
		return errors.New("the network is managed by the host here (not running as the appliance's init); nothing applied")
	}
	cfg, err := netconfConfig(n)
	if err != nil {
		return err
	}
	return s.a.opts.Network.Apply(cfg)
}

// netconfConfig converts the configured network for the netlink applier.
func netconfConfig(n config.Network) (netconf.Config, error) {
	var out netconf.Config
	for _, in := range n.Interfaces {
		ifc := netconf.Interface{Name: in.Name, VLAN: in.VLAN, Parent: in.Parent, MTU: in.MTU, DHCP: in.DHCP4}
		for _, a := range in.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return out, fmt.Errorf("interface %s: address %q: %w", in.Name, a, err)
			}
			ifc.Addresses = append(ifc.Addresses, p)
		}
		out.Interfaces = append(out.Interfaces, ifc)
	}
	gw4, _, gw6, _ := n.DefaultGateways()
	for _, g := range []struct {
		s   string
		dst *netip.Addr
	}{{gw4, &out.Gateway4}, {gw6, &out.Gateway6}} {
		if g.s == "" {
			continue
		}
		addr, err := netip.ParseAddr(g.s)
		if err != nil {
			return out, fmt.Errorf("gateway %q: %w", g.s, err)
		}
		*g.dst = addr
	}
	for _, d := range n.DNS {
		addr, err := netip.ParseAddr(d)
		if err != nil {
			return out, fmt.Errorf("DNS server %q: %w", d, err)
		}
		out.DNS = append(out.DNS, addr)
	}
	return out, nil
}

func (s *system) SetClock(_ context.Context, t time.Time) error {
	if s.a.opts.SetClock == nil {
		return errors.New("the clock is managed by the host here (not running as the appliance's init); nothing set")
	}
	return s.a.opts.SetClock(t)
}

func (s *system) Firmware(ctx context.Context) (console.FirmwareStatus, error) {
	return s.a.firmwareStatus(ctx)
}

func (s *system) Events(_ context.Context, limit int) ([]console.Event, error) {
	var out []console.Event
	for _, ev := range s.a.hub.Recent(limit) {
		out = append(out, console.Event{Time: ev.Time, Severity: string(ev.Severity), Source: ev.Source, Message: ev.Message})
	}
	return out, nil
}

func (s *system) Reboot(context.Context) error {
	s.a.requestPower(ErrRebootRequested)
	return nil
}

func (s *system) Shutdown(context.Context) error {
	s.a.requestPower(ErrShutdownRequested)
	return nil
}

func (s *system) TestCamera(ctx context.Context, c config.Camera) (string, error) {
	cam, err := recorderCamera(c)
	if err != nil {
		return "", err
	}
	return probeCamera(ctx, cam, s.a.opts.Session, 15*time.Second)
}

func (s *system) Board(context.Context) (console.BoardStatus, error) {
	bs, ok := s.a.boardStatus()
	if !ok {
		return console.BoardStatus{}, console.ErrNoBoard
	}
	model := "test board"
	if s.a.opts.Board != nil {
		model = s.a.opts.Board.Model
	}
	out := console.BoardStatus{Model: model, WatchdogReset: bs.WatchdogReset}
	for _, p := range bs.PSUs {
		out.PSUs = append(out.PSUs, console.PSUStatus{Name: p.Name, Present: p.Present, Faults: p.Faults,
			VIn: p.Reading.VIn, POut: p.Reading.POut, TempC: p.Reading.Temperature, Err: p.Err})
	}
	for _, b := range bs.Bays {
		out.Bays = append(out.Bays, console.BayStatus{Name: b.Name, Present: b.Present, Fault: b.Fault, Locate: b.Locate})
	}
	for _, ar := range bs.Arrays {
		v := console.ArrayStatus{Name: ar.Name, Recording: ar.Recording, Health: ar.Health.String(), Progress: ar.Progress, Err: ar.Err,
			Drives: []console.DriveStatus{}}
		for _, m := range ar.Array.Members {
			v.Drives = append(v.Drives, console.DriveStatus{Device: m.Device, Slot: m.Slot, State: m.State, ReadErrors: m.ReadErrors, IOErrors: m.IOErrors})
		}
		out.Arrays = append(out.Arrays, v)
	}
	return out, nil
}
