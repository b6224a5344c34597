package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nvrfw/nvr/recorder/camsim"
)

// pathSpecs collects repeated --path flags.
type pathSpecs []string

func (p *pathSpecs) String() string     { return strings.Join(*p, " ") }
func (p *pathSpecs) Set(v string) error { *p = append(*p, v); return nil }

func camsimCommand() *Command {
	return &Command{
		Name:    "camsim",
		Summary: "simulate RTSP cameras looping test clips, with fault switches",
		Usage: `Serves simulated IP cameras over RTSP (TCP and UDP) until SIGINT/SIGTERM.
Each path loops a test clip from testdata/clips forever with continuous RTP
timestamps and RTCP sender reports.

A path is NAME[=VIDEO][,audio=none|aac|pcmu][,bitrate=RATE][,user=U,pass=P]:
VIDEO is h264 (default) or h265; RATE is the video bitrate in bit/s with k/M/G
(filler is added to reach it; default the clip's ~0.5 Mbit/s). Examples:

  nvrd camsim --path cam1=h264 --path cam2=h265,audio=aac,bitrate=4M
  nvrd camsim --paths 50 --paths-spec h264,bitrate=2M --control 127.0.0.1:8555

--paths N adds N more paths named PREFIX001..PREFIXN (see --paths-prefix)
configured by --paths-spec. With --control, faults are switched over HTTP:

  curl -X POST '127.0.0.1:8555/paths/cam1/fault?kind=stall&for=10s'
  curl 127.0.0.1:8555/paths          # counters of every path (JSON)
  curl 127.0.0.1:8555/paths/cam1/frames?since=2026-11-25T17:00:00Z
  curl -X PUT '127.0.0.1:8555/paths/cam9?spec=h265,audio=aac'   # add a path
  curl -X DELETE 127.0.0.1:8555/paths/cam9                       # remove it

Fault kinds: drop, stall (for=), jump (by=, e.g. 1h or -30s), jump-ntp (by=),
params, malformed (count=), refuse-auth, never-answer (for=), restart (for=: down
time), clear.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			var specs pathSpecs
			fs.Var(&specs, "path", "a path `SPEC` to serve (repeatable), e.g. cam1=h265,audio=aac,bitrate=4M")
			listen := fs.String("listen", camsim.DefaultAddress, "RTSP (TCP) listen `address`")
			udp := fs.String("udp", "", "UDP RTP listen `address` (even port; RTCP on the next); default a free pair on the --listen host")
			noUDP := fs.Bool("no-udp", false, "offer only the TCP transport")
			mcast := fs.String("multicast", "", "also offer UDP multicast to groups of this `range` (e.g. 239.77.0.0/16)")
			mcastPort := fs.Int("multicast-port", 8002, "multicast RTP `port` (even; RTCP on the next)")
			n := fs.Int("paths", 0, "add `N` generated paths (see --paths-spec, --paths-prefix)")
			genSpec := fs.String("paths-spec", "h264", "`SPEC` of the generated paths, without the name")
			prefix := fs.String("paths-prefix", "cam", "name `prefix` of the generated paths: PREFIX001, PREFIX002, ...")
			control := fs.String("control", "", "serve the HTTP control endpoint on `address` (default none)")
			clips := fs.String("clips", "", "clip `directory` (default: the nearest testdata/clips above the working directory)")
			auth := fs.String("auth", "any", "authentication `schemes` offered for paths with user=: any, basic or digest")
			sr := fs.Duration("sr-period", camsim.DefaultSenderReportPeriod, "RTCP sender report `interval`")
			history := fs.Int("frame-history", camsim.DefaultFrameHistory, "sent frames each path remembers for GET /paths/NAME/frames (`N`; 0 none)")
			level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
			return func(ctx context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("camsim takes no arguments (use --path)")
				}
				var lvl slog.Level
				if err := lvl.UnmarshalText([]byte(*level)); err != nil {
					return usageErrorf("--log-level %q: want debug, info, warn or error", *level)
				}
				var mode camsim.AuthMode
				switch *auth {
				case "any":
					mode = camsim.AuthAny
				case "basic", "digest":
					mode = camsim.AuthMode(*auth)
				default:
					return usageErrorf("--auth %q: want any, basic or digest", *auth)
				}
				if *history <= 0 {
					*history = -1 // camsim: negative keeps none
				}
				opts := camsim.Options{
					Address: *listen, UDPAddress: *udp, DisableUDP: *noUDP, MulticastIPRange: *mcast, MulticastPort: *mcastPort, ControlAddress: *control,
					ClipDir: *clips, Auth: mode, SenderReportPeriod: *sr, FrameHistory: *history,
					Logger: env.Logger(lvl),
				}
				return runCamsim(ctx, opts, specs, *n, *genSpec, *prefix)
			}
		},
	}
}

// runCamsim parses the paths, runs the simulator until ctx is done, and
// closes it.
func runCamsim(ctx context.Context, opts camsim.Options, specs []string, n int, genSpec, prefix string) error {
	type named struct {
		name string
		cfg  camsim.PathConfig
	}
	var paths []named
	for _, s := range specs {
		name, cfg, err := camsim.ParsePathSpec(s)
		if err != nil {
			return usageErrorf("--path: %v", err)
		}
		paths = append(paths, named{name, cfg})
	}
	if n < 0 || n > 10000 {
		return usageErrorf("--paths %d: want 0..10000", n)
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%03d", prefix, i)
		_, cfg, err := camsim.ParsePathSpec(name + "=" + genSpec)
		if err != nil {
			return usageErrorf("--paths-spec: %v", err)
		}
		paths = append(paths, named{name, cfg})
	}
	if len(paths) == 0 {
		return usageErrorf("no paths: give --path or --paths")
	}
	sim, err := camsim.New(opts)
	if err != nil {
		return err
	}
	defer sim.Close()
	for _, p := range paths {
		if err := sim.AddPath(p.name, p.cfg); err != nil {
			return err
		}
	}
	if err := sim.Start(ctx); err != nil {
		return err
	}
	opts.Logger.Info("camsim serving", "first", sim.URL(paths[0].name), "paths", len(paths))
	<-ctx.Done()
	opts.Logger.Info("camsim stopping")
	closeStart := time.Now()
	err = sim.Close()
	opts.Logger.Debug("camsim stopped", "took", time.Since(closeStart))
	return err
}
