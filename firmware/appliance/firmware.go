package appliance

import (
	"context"
	"fmt"
	"time"

	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/recorder"
)

// Firmware is the A/B firmware of the running appliance.
type Firmware struct {
	// Slots manages the boot directory's A/B slots.
	Slots *slots.Manager
	// Booted is the running slot (slots.BootedSlot of /proc/cmdline).
	Booted slots.Slot
	// ConfirmAfter is how long recording must be continuously healthy
	// before a trial boot is confirmed; 0 means 60s.
	ConfirmAfter time.Duration
}

// confirmComponent confirms a trial boot once the appliance has been healthy
// for ConfirmAfter: the store commits, every camera that should record is
// recording, and the watchdog (when there is one) is being petted. Until
// then a reset (the watchdog's, or a power cut) boots the previous slot.
func (a *App) confirmComponent() Component {
	fw := a.opts.Firmware
	after := fw.ConfirmAfter
	if after <= 0 {
		after = time.Minute
	}
	return Component{Name: "firmware-confirm", Run: func(ctx context.Context) error {
		st, err := fw.Slots.Status(fw.Booted)
		if err != nil {
			return fmt.Errorf("read the firmware slots: %w", err)
		}
		// The bootloader clears the trial flag before it boots the trial
		// slot (so a failed trial falls back by itself): a trial boot is a
		// boot of a slot that is not the default.
		if st.Default == fw.Booted {
			<-ctx.Done() // running the confirmed slot: nothing to confirm
			return nil
		}
		a.hub.Publish(events.Event{Kind: "firmware.trial", Severity: events.Warning, Source: "firmware",
			Message: fmt.Sprintf("running slot %s on trial; confirmed after %s of healthy recording", fw.Booted, after),
			Alarm:   "firmware.trial"})
		var healthySince time.Time
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			now := a.opts.Now()
			if why := a.notConfirmable(); why != "" {
				healthySince = time.Time{}
				continue
			}
			if healthySince.IsZero() {
				healthySince = now
			}
			if now.Sub(healthySince) < after {
				continue
			}
			if _, err := fw.Slots.Confirm(fw.Booted); err != nil {
				return fmt.Errorf("confirm slot %s: %w", fw.Booted, err)
			}
			a.hub.Publish(events.Event{Kind: "firmware.confirmed", Source: "firmware", ClearAlarm: "firmware.trial",
				Message: fmt.Sprintf("slot %s confirmed after %s of healthy recording", fw.Booted, after)})
			a.log.Info("trial boot confirmed", "slot", fw.Booted)
			<-ctx.Done()
			return nil
		}
	}}
}

// notConfirmable says why a trial boot cannot be confirmed now ("" when it can).
func (a *App) notConfirmable() string {
	h := a.Health()
	if !h.OK {
		return "unhealthy"
	}
	rec, err := a.current()
	if err != nil {
		return err.Error()
	}
	want, err := a.desiredCameras()
	if err != nil {
		return err.Error()
	}
	for _, c := range want {
		if st, ok := rec.recorder.Status(c.Name); !ok || st.State != recorder.StateRecording {
			return "camera " + c.Name + " not recording"
		}
	}
	if a.guard != nil && !a.guard.Status().Petting {
		return "watchdog not petted"
	}
	return ""
}

// firmwareStatus is the console's view of the slots.
func (a *App) firmwareStatus(context.Context) (console.FirmwareStatus, error) {
	out := console.FirmwareStatus{Version: a.opts.Version, BuildID: a.opts.BuildID, Slot: "-"}
	fw := a.opts.Firmware
	if fw == nil {
		return out, nil
	}
	st, err := fw.Slots.Status(fw.Booted)
	if err != nil {
		return out, err
	}
	out.Slot = string(st.Booted)
	out.Trial = st.Default != st.Booted
	other := st.Booted.Other()
	if v := st.Versions[other]; v != "" {
		out.Standby = fmt.Sprintf("slot %s: %s", other, v)
	}
	return out, nil
}
