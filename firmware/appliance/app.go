package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// Options configures the appliance program.
type Options struct {
	// DataDir is the formatted recording volume (required).
	DataDir string
	// IndexPath is the store's index; "" means DataDir/index.db.
	IndexPath string
	// CommitInterval is the store's commit tick; 0 means 1s.
	CommitInterval time.Duration
	// Cameras are recorded in addition to the configured ones (from the
	// command line: demo, scripts, tests).
	Cameras []recorder.Camera
	// Session tunes every camera session (timeouts, backoff); zero means
	// the recorder's defaults.
	Session recorder.Options

	// APIAddr is where the HTTP API listens ("" disables it), e.g.
	// "127.0.0.1:8080" or ":443".
	APIAddr string
	// APITLSDir holds the API's TLS certificate, made at first boot. ""
	// serves plain HTTP, which is only accepted on a loopback APIAddr.
	APITLSDir string
	// APITokens are accepted bearer tokens in addition to the configured
	// ones (the demo prints one); keyed by token, valued by holder name.
	APITokens map[string]string

	// StallAfter is how long a recording camera may go without a frame
	// before health reports it; 0 means 10s.
	StallAfter time.Duration
	// CommitStallAfter is how long the store may go without completing a
	// commit tick before health fails; 0 means 10 commit intervals, at least 10s.
	CommitStallAfter time.Duration

	// Version is the firmware version shown in status.
	Version string
	// Logger is the program's logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ready, when set, is called once the store is open, cameras are started
	// and the API (if any) listens; addr is the API's address.
	Ready func(addr net.Addr)
}

// App is the running appliance: the store, the recorder, the event hub, the
// API, and the supervisor that keeps them alive.
type App struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	store    *ringstore.Store
	recorder *recorder.Manager
	hub      *events.Hub
	registry *prometheus.Registry
	sup      *Supervisor

	mu        sync.Mutex
	camStates map[string]recorder.State
}

// Run opens everything, records until ctx is done, then shuts down cleanly:
// components stop, camera sessions close, the last commit is made durable and
// the store is closed.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.DataDir == "" {
		return errors.New("appliance: a data directory (the formatted recording volume) is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = 10 * time.Second
	}
	a := &App{opts: opts, log: opts.Logger, started: opts.Now(), camStates: map[string]recorder.State{}}
	a.hub = events.New(events.Options{Now: opts.Now})

	a.store, err = ringstore.Open(ctx, opts.DataDir, ringstore.Options{
		IndexPath:      opts.IndexPath,
		CommitInterval: opts.CommitInterval,
		Logger:         opts.Logger.With("component", "store"),
		OnAlarm:        a.storeAlarm,
	})
	if err != nil {
		return fmt.Errorf("open the recording volume %s: %w", opts.DataDir, err)
	}
	defer func() {
		if cerr := a.store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the store: %w", cerr)
		}
		a.log.Info("store closed", "durable", a.store.Durable())
	}()
	vol := a.store.Volume()
	a.log.Info("store open", "dir", opts.DataDir, "volume", vol.ID, "slots", vol.Slots, "slot_size", vol.SlotSize)

	sessOpts := opts.Session
	sessOpts.Logger = opts.Logger.With("component", "recorder")
	a.recorder, err = recorder.NewManager(recorder.ManagerOptions{
		Writer:  func(name string) (recorder.FrameWriter, error) { return a.store.Stream(name) },
		Session: sessOpts,
		Logger:  opts.Logger.With("component", "recorder"),
	})
	if err != nil {
		return fmt.Errorf("start the recorder: %w", err)
	}
	defer func() {
		if cerr := a.recorder.Close(); cerr != nil {
			a.log.Warn("close camera sessions", "err", cerr)
		}
	}()
	for _, cam := range opts.Cameras {
		if err := a.recorder.Add(cam); err != nil {
			return fmt.Errorf("camera %s: %w", cam.Name, err)
		}
	}

	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newCollector(a))

	comps := []Component{{Name: "camera-events", Run: a.watchCameras}}
	var apiLn net.Listener
	if opts.APIAddr != "" {
		apiComp, ln, err := a.apiComponent()
		if err != nil {
			return err
		}
		apiLn = ln
		comps = append(comps, apiComp)
	}
	a.sup, err = NewSupervisor(SupervisorOptions{Logger: opts.Logger.With("component", "supervisor")}, comps...)
	if err != nil {
		return err
	}
	if opts.Ready != nil {
		var addr net.Addr
		if apiLn != nil {
			addr = apiLn.Addr()
		}
		opts.Ready(addr)
	}
	a.hub.Publish(events.Event{Kind: "appliance.started", Source: "nvrd", Message: "recording started (" + opts.Version + ")"})
	a.sup.Run(ctx)
	a.log.Info("shutting down: closing camera sessions and making the last commit durable")
	return nil
}

// apiComponent makes the API's listener now (so a bad address fails Run at
// once) and returns the component serving on it.
func (a *App) apiComponent() (Component, net.Listener, error) {
	var tlsConf *tls.Config
	if a.opts.APITLSDir != "" {
		host, _ := os.Hostname()
		cert, fp, err := api.LoadOrCreateCertificate(a.opts.APITLSDir, []string{host}, a.opts.Now())
		if err != nil {
			return Component{}, nil, err
		}
		a.log.Info("API certificate", "sha256", fp)
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if !isLoopback(a.opts.APIAddr) {
		return Component{}, nil, fmt.Errorf("API on %s without TLS: plain HTTP is only served on loopback", a.opts.APIAddr)
	}
	srv, err := api.New(api.Options{Backend: &backend{a: a}, Gatherer: a.registry, Registerer: a.registry,
		Logger: a.log.With("component", "api"), Now: a.opts.Now})
	if err != nil {
		return Component{}, nil, err
	}
	ln, err := net.Listen("tcp", a.opts.APIAddr)
	if err != nil {
		return Component{}, nil, fmt.Errorf("API listen on %s: %w", a.opts.APIAddr, err)
	}
	a.log.Info("API listening", "addr", ln.Addr().String(), "tls", tlsConf != nil)
	first := true
	return Component{Name: "api", Run: func(ctx context.Context) error {
		l := ln
		if !first { // a restart after a failure listens afresh
			var err error
			if l, err = net.Listen("tcp", a.opts.APIAddr); err != nil {
				return fmt.Errorf("API listen on %s: %w", a.opts.APIAddr, err)
			}
		}
		first = false
		return srv.Run(ctx, l, tlsConf)
	}}, ln, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
func (a *App) watchCameras(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		a.publishCameraChanges()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *App) publishCameraChanges() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.recorder.Statuses() {
		prev, seen := a.camStates[st.Name]
		if seen && prev == st.State {
			continue
		}
		a.camStates[st.Name] = st.State
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
