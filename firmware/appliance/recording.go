package appliance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/clip"
	"github.com/nvrfw/nvr/ringstore"
)

// recording is the recording scope: the open store and the camera sessions
// writing into it.
type recording struct {
	dataDir  string
	store    *ringstore.Store
	recorder *recorder.Manager
	// clips shares one scan of a range among a player's Range requests; it
	// belongs to this store (a restarted scope starts a new cache).
	clips *clip.Cache
	// handover makes the camera writers of a node of a pair (nil alone).
	handover *handoverSet

	mu        sync.Mutex
	camStates map[string]recorder.State
}

func (a *App) dataDir() string {
	if a.opts.DataDir != "" {
		return a.opts.DataDir
	}
	if a.cfg != nil {
		if site, err := a.cfg.Site(); err == nil {
			return site.Storage.DataDir
		}
	}
	return ""
}

// storeOptions merges the command line over the configuration.
func (a *App) storeOptions() ringstore.Options {
	o := ringstore.Options{IndexPath: a.opts.IndexPath, CommitInterval: a.opts.CommitInterval,
		Logger: a.log.With("component", "store"), OnAlarm: a.storeAlarm, FS: a.opts.test.fs}
	if a.cfg != nil {
		if site, err := a.cfg.Site(); err == nil {
			if o.IndexPath == "" {
				o.IndexPath = site.Storage.IndexPath
			}
			if o.CommitInterval == 0 {
				o.CommitInterval = site.Storage.CommitInterval
			}
			o.MaxAge = site.Storage.DefaultMaxAge
		}
	}
	return o
}

// runRecording opens the store and the camera sessions and runs them until
// ctx is done, a restart is requested (returned), or a power action is
// (returned as powerErr). An error means the appliance cannot go on.
func (a *App) runRecording(ctx context.Context, ready func()) (req restartRequest, powerErr, err error) {
	dir := a.dataDir()
	store, err := ringstore.Open(ctx, dir, a.storeOptions())
	for err != nil {
		if a.opts.Console == nil {
			return req, nil, fmt.Errorf("open the recording volume %s: %w", dir, err)
		}
		// With a console the operator can fix it (format the volume): stay
		// up, alarmed, and retry.
		a.hub.Publish(events.Event{Kind: "store.unavailable", Severity: events.Critical, Source: "store",
			Message: fmt.Sprintf("recording volume %s cannot be opened: %v", dir, err), Alarm: "store.unavailable"})
		ready()
		select {
		case <-ctx.Done():
			return req, nil, nil
		case p := <-a.power:
			return req, p, nil
		case req = <-a.restart:
			return req, nil, nil
		case <-time.After(10 * time.Second):
		}
		dir = a.dataDir()
		store, err = ringstore.Open(ctx, dir, a.storeOptions())
	}
	a.hub.Publish(events.Event{Kind: "store.open", Source: "store", ClearAlarm: "store.unavailable",
		Message: fmt.Sprintf("recording volume %s open (%s)", dir, store.Volume().ID)})
	vol := store.Volume()
	a.log.Info("store open", "dir", dir, "volume", vol.ID, "slots", vol.Slots, "slot_size", vol.SlotSize)
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the store: %w", cerr)
		}
		a.log.Info("store closed", "durable", store.Durable())
	}()

	sessOpts := a.opts.Session
	sessOpts.Logger = a.log.With("component", "recorder")
	writer := func(name string) (recorder.FrameWriter, error) { return store.Stream(name) }
	var handover *handoverSet
	if a.inCluster() {
		handover = newHandoverSet(store, a.log.With("component", "cluster"))
		writer = handover.writer
	}
	mgr, err := recorder.NewManager(recorder.ManagerOptions{
		Writer:  writer,
		Session: sessOpts,
		Logger:  a.log.With("component", "recorder"),
	})
	if err != nil {
		return req, nil, fmt.Errorf("start the recorder: %w", err)
	}
	clips, err := clip.NewCache(clip.CacheOptions{})
	if err != nil {
		return req, nil, err
	}
	rec := &recording{dataDir: dir, store: store, recorder: mgr, clips: clips, handover: handover, camStates: map[string]recorder.State{}}
	defer func() {
		a.mu.Lock()
		a.rec = nil
		a.mu.Unlock()
		if cerr := mgr.Close(); cerr != nil {
			a.log.Warn("close camera sessions", "err", cerr)
		}
	}()
	a.applyRetention(rec)
	cams, err := a.desiredCameras()
	if err != nil {
		return req, nil, err
	}
	if err := mgr.Set(cams); err != nil {
		return req, nil, fmt.Errorf("start camera sessions: %w", err)
	}
	comps := []Component{{Name: "camera-events", Run: func(ctx context.Context) error { return a.watchCameras(ctx, rec) }}}
	if a.inCluster() {
		comps = append(comps, a.clusterComponent(rec))
	}
	sup, err := NewSupervisor(SupervisorOptions{Logger: a.log.With("component", "supervisor")}, comps...)
	if err != nil {
		return req, nil, err
	}
	a.mu.Lock()
	a.rec, a.innerSup = rec, sup
	a.mu.Unlock()

	innerCtx, stop := context.WithCancel(ctx)
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		sup.Run(innerCtx)
	}()
	defer func() { stop(); <-supDone }()
	ready()
	select {
	case <-ctx.Done():
		a.log.Info("shutting down: closing camera sessions and making the last commit durable")
	case powerErr = <-a.power:
		a.log.Info("power action requested: closing camera sessions and making the last commit durable", "action", powerErr)
	case req = <-a.restart:
	}
	return req, powerErr, nil
}

// formatVolume erases the recording volume and formats it again with the
// same capacity (or, never formatted, 95 % of the file system's free space).
// Called between recording scopes, so nothing has the volume open.
func (a *App) formatVolume(ctx context.Context) error {
	dir := a.dataDir()
	size := int64(0)
	if info, err := ringstore.ReadVolumeInfo(dir); err == nil {
		size = info.SlotSize * int64(info.Slots)
	}
	if size == 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return fmt.Errorf("format %s: measure free space: %w", dir, err)
		}
		size = int64(st.Bavail) * st.Bsize / 100 * 95
	}
	opts := a.storeOptions()
	index := opts.IndexPath
	if index == "" {
		index = filepath.Join(dir, "index.db")
	}
	// Unformat first (the volume header goes, durably), then the rest.
	if err := os.Remove(filepath.Join(dir, "VOLUME")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("format %s: remove the old volume header: %w", dir, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	for _, p := range []string{filepath.Join(dir, "slots"), index} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("format %s: remove %s: %w", dir, p, err)
		}
	}
	start := a.opts.Now()
	lastReport := start
	info, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: size, IndexPath: opts.IndexPath,
		Progress: func(done, total int64) {
			if now := a.opts.Now(); now.Sub(lastReport) >= 2*time.Second || done == total {
				lastReport = now
				a.log.Info("formatting the recording volume", "done", done, "total", total)
			}
		}})
	if err != nil {
		a.hub.Publish(events.Event{Kind: "store.format_failed", Severity: events.Critical, Source: "store",
			Message: fmt.Sprintf("format of %s failed: %v", dir, err), Alarm: "store.unavailable"})
		return err
	}
	a.hub.Publish(events.Event{Kind: "store.formatted", Severity: events.Warning, Source: "store",
		Message: fmt.Sprintf("recording volume %s formatted: %d slots of %d bytes (%s)", dir, info.Slots, info.SlotSize, a.opts.Now().Sub(start).Round(time.Millisecond))})
	return nil
}

// storeAlarm turns store faults into alarms (called from the store's writer:
// Publish never blocks).
func (a *App) storeAlarm(al ringstore.Alarm) {
	a.hub.Publish(events.Event{
		Time: al.Time, Kind: "store." + al.Kind, Severity: events.Critical, Source: fmt.Sprintf("slot%d", al.Slot),
		Message: fmt.Sprintf("store %s fault on slot %d: %v (recording continues in the next slot)", al.Kind, al.Slot, al.Err),
		Alarm:   "store.suspect." + fmt.Sprint(al.Slot),
	})
}

// watchCameras publishes camera state changes as events once a second: a
// camera leaving "recording" raises an alarm, returning clears it.
func (a *App) watchCameras(ctx context.Context, rec *recording) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		a.publishCameraChanges(rec)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *App) publishCameraChanges(rec *recording) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, st := range rec.recorder.Statuses() {
		prev, seen := rec.camStates[st.Name]
		if seen && prev == st.State {
			continue
		}
		rec.camStates[st.Name] = st.State
		ev := events.Event{Kind: "camera." + st.State.String(), Source: st.Name,
			Message: fmt.Sprintf("camera %s: %s", st.Name, st.State)}
		switch st.State {
		case recorder.StateRecording:
			ev.ClearAlarm = "camera.offline." + st.Name
		case recorder.StateBackoff, recorder.StateError:
			ev.Severity = events.Warning
			ev.Message += ": " + st.LastError
			ev.Alarm = "camera.offline." + st.Name
		case recorder.StateConnecting, recorder.StateIdle:
			if !seen {
				continue // starting up is not news
			}
		}
		a.hub.Publish(ev)
	}
}
