package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/firmware/netconf"
	"github.com/nvrfw/nvr/firmware/timesync"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore/vfs"
	"github.com/nvrfw/nvr/watchdog"
)

// Errors Run returns when the operator asked for a power action: the caller
// (nvrd run) performs it after everything is closed cleanly.
var (
	ErrRebootRequested   = errors.New("reboot requested")
	ErrShutdownRequested = errors.New("shutdown requested")
)

// Options configures the appliance program.
type Options struct {
	// DataDir is the formatted recording volume; required unless the
	// configuration names one.
	DataDir string
	// IndexPath is the store's index; "" means DataDir/index.db.
	IndexPath string
	// CommitInterval is the store's commit tick; 0 means the configuration's,
	// else 1s.
	CommitInterval time.Duration
	// ConfigPath is the configuration database on the persistent config
	// volume; "" runs without one (cameras only from Cameras, no console
	// users, API tokens only from APITokens).
	ConfigPath string
	// Cameras are recorded in addition to the configured ones (from the
	// command line: demo, scripts, tests).
	Cameras []recorder.Camera
	// Session tunes every camera session (timeouts, backoff); zero means
	// the recorder's defaults.
	Session recorder.Options

	// Console is the operator's terminal (the serial console, or stdin and
	// stdout for the demo); nil runs without a console. Needs ConfigPath.
	Console io.ReadWriter

	// APIAddr is where the HTTP API listens ("" disables it), e.g.
	// "127.0.0.1:8080" or ":443".
	APIAddr string
	// APITLSDir holds the API's TLS certificate, made at first boot. ""
	// serves plain HTTP, which is only accepted on a loopback APIAddr.
	APITLSDir string
	// APITokens are accepted bearer tokens in addition to the configured
	// ones (the demo prints one); keyed by token, valued by holder name.
	APITokens map[string]string

	// Network applies network settings; nil means the host manages the
	// network (demo, tests) and the console's network changes are refused.
	Network *netconf.Applier
	// SetClock sets the system clock; nil refuses (the host owns the clock).
	SetClock func(time.Time) error
	// SlewClock corrects the system clock gradually by the given offset;
	// nil steps it through SetClock instead.
	SlewClock func(time.Duration) error
	// NTPPort is the configured NTP servers' UDP port; 0 means 123.
	NTPPort int
	// Firmware is the A/B firmware: the console shows it, and a trial boot
	// is confirmed once recording is healthy. nil: no slots (demo, tests).
	Firmware *Firmware

	// Board is the board profile whose PSUs, drive bays and md arrays are
	// monitored; nil monitors none.
	Board *board.Profile
	// WatchdogPath is the hardware watchdog device, petted only while
	// recording is healthy; "" means the board profile's, or none.
	WatchdogPath string
	// WatchdogTimeout is the watchdog's timeout; 0 means the profile's, else
	// the watchdog package's default (30s).
	WatchdogTimeout time.Duration
	// BootCountPath, when set, is the file counting boots and watchdog
	// resets (on the persistent config volume).
	BootCountPath string

	// StallAfter is how long a recording camera may go without a frame
	// before health reports it; 0 means 10s.
	StallAfter time.Duration
	// CommitStallAfter is how long the store may go without completing a
	// commit tick before health fails; 0 means 10 commit intervals, at least 10s.
	CommitStallAfter time.Duration

	// Cluster, when set, makes this appliance a data node of a pair (see
	// ClusterOptions). nil: the pair the configuration enables (its
	// settings, the bundle in ClusterDir(ConfigPath)); when that cannot
	// start, or none is enabled, the appliance records on its own (an
	// invalid or half-done pairing raises an alarm but never stops it).
	Cluster *ClusterOptions

	// Version and BuildID are the firmware's, shown in status.
	Version, BuildID string
	// Logger is the program's logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ready, when set, is called once the store is open, cameras are started
	// and the API (if any) listens; addr is the API's address.
	Ready func(addr net.Addr)

	test testHooks
}

// testHooks replace hardware and disks with fakes in this package's tests.
type testHooks struct {
	fs       vfs.FS                // the store's file system (a fault injector)
	board    *board.MonitorOptions // a board made of fakes instead of hardware.Open
	watchdog *watchdog.Options     // a fake device and fast timings instead of a real one
}

// App is the running appliance. The outer scope (event hub, configuration,
// console, API) lives as long as Run; the recording scope (store and camera
// sessions) is restarted in place when the volume is formatted or a setting
// that needs a restart changes, without dropping the console or the API.
type App struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	hub      *events.Hub
	cfg      *config.Store // nil without ConfigPath
	registry *prometheus.Registry
	outer    *Supervisor

	guard    *watchdog.Guard  // nil without a watchdog
	timesync *timesync.Syncer // nil without a configuration
	board    *board.Monitor   // nil without a board profile

	mu       sync.RWMutex
	rec      *recording // nil while (re)starting
	innerSup *Supervisor

	restart chan restartRequest
	power   chan error // ErrRebootRequested or ErrShutdownRequested

	cl clusterState // the pair's view; unused outside a pair
}

// restartRequest asks the recording scope to restart, formatting the volume
// first when format is set.
type restartRequest struct {
	reason string
	format bool
	done   chan error
}

// errRestarting is returned while the recording scope is (re)starting.
var errRestarting = errors.New("recording is (re)starting; try again in a few seconds")

// Run opens everything, records until ctx is done or the operator asks for a
// reboot or shutdown, then shuts down cleanly: components stop, camera
// sessions close, the last commit is made durable and the store is closed.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = 10 * time.Second
	}
	if opts.Console != nil && opts.ConfigPath == "" {
		return errors.New("appliance: a console needs a configuration database (ConfigPath)")
	}
	if opts.Cluster != nil {
		c := *opts.Cluster
		if err := c.validate(); err != nil {
			return fmt.Errorf("appliance: %w", err)
		}
		opts.Cluster = &c
	}
	a := &App{
		opts: opts, log: opts.Logger, started: opts.Now(),
		restart: make(chan restartRequest), power: make(chan error, 1),
	}
	a.hub = events.New(events.Options{Now: opts.Now})
	if opts.ConfigPath != "" {
		a.cfg, err = config.Open(config.Options{Path: opts.ConfigPath, Now: opts.Now})
		if err != nil {
			return fmt.Errorf("open the configuration %s: %w", opts.ConfigPath, err)
		}
		defer a.cfg.Close()
	}
	if opts.DataDir == "" && a.dataDir() == "" {
		return errors.New("appliance: no recording volume: give a data directory or set one in the configuration")
	}
	a.clusterFromConfig() // without Cluster options, the configuration's pair (see pairing.go)

	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newCollector(a), newTimeCollector(a))
	if a.opts.Cluster != nil {
		a.registry.MustRegister(newClusterCollector(a))
	}

	var comps []Component
	var apiLn net.Listener
	if opts.APIAddr != "" {
		apiComp, ln, err := a.apiComponent()
		if err != nil {
			return err
		}
		apiLn = ln
		comps = append(comps, apiComp)
	}
	if opts.Console != nil {
		con, err := console.New(console.Options{Terminal: opts.Console, Config: a.cfg, System: &system{a: a},
			Logger: a.log.With("component", "console")})
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		comps = append(comps, Component{Name: "console", Run: con.Run})
	}
	if a.cfg != nil {
		tc, err := a.timeComponent()
		if err != nil {
			return err
		}
		comps = append(comps, tc)
		cancel := a.cfg.Subscribe(a.configChanged)
		defer cancel()
	}
	hwComps, closeHW, err := a.hardwareComponents()
	if err != nil {
		return err
	}
	comps = append(comps, hwComps...)
	if opts.Firmware != nil {
		comps = append(comps, a.confirmComponent())
	}
	a.outer, err = NewSupervisor(SupervisorOptions{Logger: a.log.With("component", "supervisor")}, comps...)
	if err != nil {
		return err
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	outerDone := make(chan struct{})
	go func() {
		defer close(outerDone)
		a.outer.Run(ctx)
	}()
	defer func() { stop(); <-outerDone; closeHW() }()

	readyOnce := sync.OnceFunc(func() {
		if opts.Ready != nil {
			var addr net.Addr
			if apiLn != nil {
				addr = apiLn.Addr()
			}
			opts.Ready(addr)
		}
	})
	a.hub.Publish(events.Event{Kind: "appliance.started", Source: "nvrd", Message: "nvrd " + opts.Version + " started"})
	for {
		req, powerErr, err := a.runRecording(ctx, readyOnce)
		if err != nil {
			return err
		}
		switch {
		case powerErr != nil:
			return powerErr
		case ctx.Err() != nil:
			return nil
		}
		a.log.Info("recording restarts", "reason", req.reason)
		ferr := error(nil)
		if req.format {
			release := a.holdWatchdog("format of the recording volume", 30*time.Minute)
			ferr = a.formatVolume(ctx)
			release()
		}
		if req.done != nil {
			req.done <- ferr
		}
	}
}

// current returns the recording scope, or errRestarting.
func (a *App) current() (*recording, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.rec == nil {
		return nil, errRestarting
	}
	return a.rec, nil
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

// requestRestart asks the recording scope to restart and waits until it has
// stopped (and the volume is formatted, when asked).
func (a *App) requestRestart(ctx context.Context, req restartRequest) error {
	req.done = make(chan error, 1)
	select {
	case a.restart <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestPower asks Run to stop cleanly and return err.
func (a *App) requestPower(err error) {
	select {
	case a.power <- err:
	default: // one is already pending
	}
}
