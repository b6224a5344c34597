package appliance

import (
	"fmt"
	"net/url"

	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/recorder"
)

// desiredCameras is what should record: the command line's cameras and the
// configuration's enabled ones (the command line wins a name clash); none on
// the standby of a pair (see cluster.go).
func (a *App) desiredCameras() ([]recorder.Camera, error) {
	if !a.recordsNow() {
		return nil, nil
	}
	return a.configuredCameras()
}

// configuredCameras is what records on a node that records (desiredCameras
// without the pair's role).
func (a *App) configuredCameras() ([]recorder.Camera, error) {
	out := append([]recorder.Camera(nil), a.opts.Cameras...)
	if a.cfg == nil {
		return out, nil
	}
	site, err := a.cfg.Site()
	if err != nil {
		return nil, fmt.Errorf("read the configured cameras: %w", err)
	}
	have := map[string]bool{}
	for _, c := range out {
		have[c.Name] = true
	}
	for _, c := range site.Cameras {
		if !c.Enabled || have[c.Name] {
			continue
		}
		cam, err := recorderCamera(c)
		if err != nil {
			a.log.Warn("configured camera not usable", "camera", c.Name, "err", err)
			continue
		}
		out = append(out, cam)
	}
	return out, nil
}

// recorderCamera converts a configured camera (credentials in their own
// fields) into the recorder's (credentials inside the URL).
func recorderCamera(c config.Camera) (recorder.Camera, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return recorder.Camera{}, fmt.Errorf("camera %s: URL: %w", c.Name, err)
	}
	if c.Username != "" {
		u.User = url.UserPassword(c.Username, c.Password.Reveal())
	}
	cam := recorder.Camera{Name: c.Name, URL: u.String(), Transport: recorder.Transport(c.Transport)}
	return cam, cam.Validate()
}

// configChanged applies a committed configuration change. It runs inside
// the configuration's commit notification, so it must not call Apply and
// must not block for long: camera changes go to the recorder (which starts
// and stops sessions without waiting), restart-effect changes are announced
// (an operator restarts with the console's reboot when convenient).
func (a *App) configChanged(ch config.Change) {
	a.hub.Publish(events.Event{Kind: "config.changed", Source: ch.Actor, Message: ch.What,
		Data: map[string]string{"kind": ch.Kind, "effect": string(ch.Effect)}})
	if ch.Effect == config.Restart {
		a.hub.Publish(events.Event{Kind: "config.restart_needed", Severity: events.Warning, Source: "config",
			Message: fmt.Sprintf("%q takes effect after a restart", ch.What), Alarm: "config.restart_needed"})
	}
	a.timeConfigChanged(ch)
	rec, err := a.current()
	if err != nil {
		return // the next recording scope reads the configuration afresh
	}
	a.applyRetention(rec)
	cams, err := a.desiredCameras()
	if err == nil {
		err = rec.recorder.Set(cams)
	}
	if err != nil {
		a.log.Error("apply camera configuration", "err", err)
		a.hub.Publish(events.Event{Kind: "config.apply_failed", Severity: events.Warning, Source: "config",
			Message: "camera configuration not applied: " + err.Error()})
	}
}

// applyRetention gives every configured camera its maximum age of footage
// (its own, else the site's default); cameras without one keep footage until
// the ring needs the space.
func (a *App) applyRetention(rec *recording) {
	if a.cfg == nil {
		return
	}
	site, err := a.cfg.Site()
	if err != nil {
		a.log.Warn("read retention settings", "err", err)
		return
	}
	for _, c := range site.Cameras {
		age := c.MaxAge
		if age == 0 {
			age = site.Storage.DefaultMaxAge
		}
		rec.store.SetRetention(c.Name, age)
	}
}
