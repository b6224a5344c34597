package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/appliance"
	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/recorder"
)

// cameraFlags collects repeated --camera NAME=URL flags.
type cameraFlags []recorder.Camera

func (c *cameraFlags) String() string {
	names := make([]string, len(*c))
	for i, cam := range *c {
		names[i] = cam.Name
	}
	return strings.Join(names, ",")
}

func (c *cameraFlags) Set(v string) error {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return fmt.Errorf("want NAME=rtsp://[user:pass@]host[:port]/path, got %q", v)
	}
	cam := recorder.Camera{Name: name, URL: url}
	if err := cam.Validate(); err != nil {
		return err
	}
	for _, have := range *c {
		if have.Name == name {
			return fmt.Errorf("camera %q given twice", name)
		}
	}
	*c = append(*c, cam)
	return nil
}

// stringsFlag collects a repeated string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runCommand() *Command {
	return &Command{
		Name:    "run",
		Summary: "record cameras: the appliance's long-lived process",
		Usage: `Opens the recording volume, records every camera, serves the HTTP API, and
keeps all of it running until SIGINT or SIGTERM, then shuts down cleanly (the
last commit is made durable). Cameras come from the configuration and from
--camera flags.

examples:
  nvrd run --data /data --camera lobby=rtsp://admin:secret@10.0.0.21/stream1
  nvrd run --data ./var/store --camera cam1=rtsp://127.0.0.1:8554/cam1 --api 127.0.0.1:8080 --api-token demo

As a data node of a pair (--cluster-dir holds the imported pairing bundle;
raft and mirror state go under it): cameras record only while this node is
the primary; the primary mirrors its store to the standby.
  nvrd run --data /data --config /cfg/nvr.db --cluster-dir /cfg/cluster --cluster-id primary \
      --cluster-peers primary=10.0.0.1:7100,standby=10.0.0.2:7100,witness=10.0.0.3:7100/witness \
      --heartbeat dedicated=10.78.0.1:7200/10.78.0.2:7200 --heartbeat lan=10.0.0.1:7201/10.0.0.2:7201 \
      --vip 10.0.0.100 --vip-iface eth0

Without --cluster-dir, a pair enabled in --config's settings (console "cluster
set", "cluster enable") is joined: its bundle, saved by the console's "cluster
pair" or "cluster import", and raft's and the mirror's state are in the
directory of the configuration database + "/cluster". Flags, when given, win.
When that pair cannot start (no bundle, another node's, invalid settings),
nvrd logs why, raises the cluster.not_started alarm and records alone: a
half-done pairing never locks the console out.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			var (
				data      = fs.String("data", "", "the formatted recording volume (see nvrd store format); required")
				index     = fs.String("index", "", "the store's index file (default DATA/index.db)")
				commit    = fs.Duration("commit-interval", time.Second, "store commit tick: the most footage a power cut can lose")
				transport = fs.String("transport", "tcp", "RTP transport for --camera cameras: tcp, udp or multicast")
				apiAddr   = fs.String("api", "127.0.0.1:8080", `HTTP API listen address ("" disables it)`)
				tlsDir    = fs.String("api-tls-dir", "", "directory of the API's TLS certificate, made on first start (required unless --api is loopback)")
				logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
				logFile   = fs.String("log-file", "", "append logs to this file instead of stderr")
				cfgPath   = fs.String("config", "", "the configuration database (cameras, users, tokens, network); created when missing")
				conSpec   = fs.String("console", "none", `operator console: "stdio", a serial device such as /dev/ttyS0, or "none" (needs --config)`)
				initMode  = fs.Bool("appliance", false, "run as the appliance's init: apply network and clock settings, reboot or power off when the console asks")
				cpuProf   = fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
				boardSpec = fs.String("board", "", "board profile (a built-in name, see nvrd board profiles, or a file) whose PSUs, bays and arrays are monitored")
				wdPath    = fs.String("watchdog", "", `hardware watchdog device petted while recording is healthy ("" uses the board profile's)`)
				bootCount = fs.String("boot-count", "", "file counting boots and watchdog resets (on the persistent config volume)")
				slotsDir  = fs.String("slots-dir", "", "the boot directory with the A/B firmware slots: a trial boot is confirmed once recording is healthy")
				confirmIn = fs.Duration("confirm-after", time.Minute, "how long recording must be healthy before a trial boot is confirmed")
				cams      cameraFlags
				tokens    stringsFlag
				cl        clusterFlags
			)
			cl.register(fs)
			fs.Var(&cams, "camera", "NAME=URL of a camera to record (repeatable)")
			fs.Var(&tokens, "api-token", "a bearer token the API accepts (repeatable; tokens are normally created on the console)")
			return func(ctx context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("run takes no arguments, got %q", args)
				}
				if *data == "" && *cfgPath == "" {
					return usageErrorf("--data is required (or a --config that names the volume)")
				}
				var level slog.Level
				if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
					return usageErrorf("--log-level: %v", err)
				}
				switch recorder.Transport(*transport) {
				case recorder.TransportTCP, recorder.TransportUDP, recorder.TransportMulticast:
				default:
					return usageErrorf("--transport %q: want tcp, udp or multicast", *transport)
				}
				for i := range cams {
					cams[i].Transport = recorder.Transport(*transport)
				}
				tokenMap := map[string]string{}
				for i, t := range tokens {
					if len(t) < 4 {
						return usageErrorf("--api-token must be at least 4 characters")
					}
					tokenMap[t] = fmt.Sprintf("command-line token %d", i+1)
				}
				if *conSpec != "none" && *cfgPath == "" {
					return usageErrorf("--console needs --config (users and cameras live there)")
				}
				log, closeLog, err := openLog(env, *logFile, level)
				if err != nil {
					return err
				}
				defer closeLog()
				term, closeTerm, err := openConsole(*conSpec)
				if err != nil {
					return err
				}
				defer closeTerm()
				opts := appliance.Options{
					DataDir: *data, IndexPath: *index, CommitInterval: *commit, Cameras: cams, ConfigPath: *cfgPath,
					APIAddr: *apiAddr, APITLSDir: *tlsDir, APITokens: tokenMap, Console: term,
					Version: env.Version, BuildID: env.BuildID, Logger: log,
					Ready: func(addr net.Addr) {
						msg := fmt.Sprintf("nvrd: recording %d camera(s) into %s", len(cams), *data)
						if addr != nil {
							scheme := "http"
							if *tlsDir != "" {
								scheme = "https"
							}
							msg += fmt.Sprintf("; API on %s://%s/api/v1/status", scheme, addr)
						}
						fmt.Fprintln(env.Stderr, msg)
					},
				}
				if *initMode {
					if err := applianceMode(&opts); err != nil {
						return err
					}
				}
				if *boardSpec != "" {
					p, err := loadBoard(*boardSpec)
					if err != nil {
						return err
					}
					opts.Board = p
				}
				opts.WatchdogPath, opts.BootCountPath = *wdPath, *bootCount
				if *slotsDir != "" {
					fw, err := openFirmware(*slotsDir, *confirmIn)
					if err != nil {
						return err
					}
					opts.Firmware = fw
				}
				if opts.Cluster, err = cl.options(); err != nil {
					return err
				}
				if pct := tuneGC(os.Getenv("GOGC")); pct > 0 {
					log.Debug("garbage collector target set", "gc_percent", pct)
				}
				if *cpuProf != "" {
					stop, err := startCPUProfile(*cpuProf)
					if err != nil {
						return err
					}
					defer stop()
				}
				err = appliance.Run(ctx, opts)
				return powerAction(err, *initMode, env)
			}
		},
	}
}

// runGCPercent is nvrd run's garbage collector target (Go's default is
// 100). The recorder's read path makes little garbage (pooled buffers, no
// allocation per packet), so collecting at half the live heap rather than
// at all of it costs no measurable CPU and keeps resident memory about 6 %
// lower (make bench-record, 50 and 100 cameras).
const runGCPercent = 50

// tuneGC sets the garbage collector target to runGCPercent unless the
// operator set GOGC (gogc, its value), and returns the target it set (0:
// none).
func tuneGC(gogc string) int {
	if gogc != "" {
		return 0
	}
	debug.SetGCPercent(runGCPercent)
	return runGCPercent
}

// startCPUProfile starts profiling the process's CPU into path; the
// returned function stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// clusterFlags are nvrd run's flags for a node of a pair.
type clusterFlags struct {
	dir, id, peers, bind, vip, vipIface, mirrorBind *string
	heartbeats                                      stringsFlag
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	c.dir = fs.String("cluster-dir", "", "run as a data node of a pair: `directory` holding the imported pairing bundle (raft and mirror state are kept under it)")
	c.id = fs.String("cluster-id", "", "this node's `ID` in the pair (as in its pairing bundle; default the bundle's)")
	c.peers = fs.String("cluster-peers", "", "the three voters: `id=host:port,id=host:port,id=host:port/witness`")
	c.bind = fs.String("cluster-bind", "", "raft listen `address` (default this node's --cluster-peers address)")
	c.vip = fs.String("vip", "", "the pair's service `address` (IPv4 or IPv6), held by the primary")
	c.vipIface = fs.String("vip-iface", "", "the LAN `interface` the VIP is answered on")
	c.mirrorBind = fs.String("mirror-bind", "", "mirror receiver listen `address` (default :7445)")
	fs.Var(&c.heartbeats, "heartbeat", "a heartbeat path `name=local-ip:port/peer-ip:port` (repeatable; dedicated link first)")
}

// options returns the appliance's cluster options, nil without --cluster-dir
// (then the appliance runs the pair its configuration enables, if any).
func (c *clusterFlags) options() (*appliance.ClusterOptions, error) {
	if *c.dir == "" {
		if *c.peers != "" || *c.vip != "" || len(c.heartbeats) > 0 {
			return nil, usageErrorf("--cluster-peers, --vip and --heartbeat need --cluster-dir")
		}
		return nil, nil
	}
	b, err := pairing.Load(*c.dir)
	if err != nil {
		return nil, fmt.Errorf("--cluster-dir: %w", err)
	}
	o := &appliance.ClusterOptions{ID: *c.id, Bind: *c.bind, Dir: *c.dir, Pairing: b, VIPLink: *c.vipIface, MirrorBind: *c.mirrorBind}
	if o.ID == "" {
		o.ID = b.NodeID
	}
	if o.Peers, err = cluster.ParsePeers(*c.peers); err != nil || len(o.Peers) != 3 {
		return nil, usageErrorf("--cluster-peers %q: want the three voters (%v)", *c.peers, err)
	}
	if *c.vip != "" {
		if o.VIP, err = netip.ParseAddr(*c.vip); err != nil {
			return nil, usageErrorf("--vip: %v", err)
		}
		if o.VIPLink == "" {
			return nil, usageErrorf("--vip needs --vip-iface")
		}
	}
	for _, h := range c.heartbeats {
		name, rest, ok := strings.Cut(h, "=")
		local, peer, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || name == "" || local == "" || peer == "" {
			return nil, usageErrorf("--heartbeat %q: want name=local-ip:port/peer-ip:port", h)
		}
		o.Heartbeat = append(o.Heartbeat, heartbeat.Path{Name: name, Local: local, Peer: peer})
	}
	if len(o.Heartbeat) == 0 {
		return nil, usageErrorf("--cluster-dir needs at least one --heartbeat path")
	}
	return o, nil
}
