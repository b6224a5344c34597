package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nvrfw/nvr/firmware/appliance"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

func demoCommand() *Command {
	return &Command{
		Name:    "demo",
		Summary: "record three simulated cameras into a local store (what make demo runs)",
		Usage: `Runs the appliance on an embedded default: a camera simulator on 127.0.0.1
serving three cameras (H.264 with AAC audio, H.265, H.264 at 2 Mbit/s), a store
formatted under --dir on first use, nvrd run recording them, and the API on
127.0.0.1. Stop it with Ctrl-C: it shuts down cleanly (final commit). Then
export a clip with the command it prints.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			var (
				dir     = fs.String("dir", "var", "directory for the demo's store")
				size    = fs.String("size", "512M", "store size when it is formatted")
				apiAddr = fs.String("api", "127.0.0.1:8080", "API listen address")
				rtsp    = fs.String("rtsp", "127.0.0.1:8554", "the simulator's RTSP address")
				noCon   = fs.Bool("no-console", false, "do not run the operator console on this terminal (logs go to stderr instead)")
			)
			return func(ctx context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("demo takes no arguments")
				}
				bytes, err := parseSize(*size)
				if err != nil {
					return usageErrorf("--size: %v", err)
				}
				return runDemo(ctx, env, demoConfig{dir: *dir, size: bytes, apiAddr: *apiAddr, rtspAddr: *rtsp, console: !*noCon})
			}
		},
	}
}

// demoConfig is what nvrd demo was asked for.
type demoConfig struct {
	dir               string
	size              int64
	apiAddr, rtspAddr string
	console           bool
}

func runDemo(ctx context.Context, env Env, dc demoConfig) error {
	dir, size, apiAddr, rtspAddr := dc.dir, dc.size, dc.apiAddr, dc.rtspAddr
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	log := env.Logger(slog.LevelInfo)
	logNote := ""
	opts := appliance.Options{}
	if dc.console {
		// The terminal is the console: logs go to a file beside the store.
		logPath := filepath.Join(dir, "nvrd.log")
		var closeLog func()
		var err error
		if log, closeLog, err = openLog(env, logPath, slog.LevelInfo); err != nil {
			return err
		}
		defer closeLog()
		term, closeTerm, err := openConsole("stdio")
		if err != nil {
			return err
		}
		defer closeTerm()
		opts.Console, opts.ConfigPath = term, filepath.Join(dir, "config.db")
		logNote = "logs: " + logPath + "; the console below takes the first-run login it prints.\n"
	}
	data := filepath.Join(dir, "store")
	if _, err := os.Stat(filepath.Join(data, "VOLUME")); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(env.Stderr, "demo: formatting a %d MiB store in %s\n", size>>20, data)
		if _, err := ringstore.Format(ctx, data, ringstore.FormatOptions{Size: size}); err != nil {
			return fmt.Errorf("format the demo store: %w", err)
		}
	}
	sim, err := camsim.New(camsim.Options{Address: rtspAddr, Logger: log.With("component", "camsim")})
	if err != nil {
		return err
	}
	paths := []struct {
		name string
		cfg  camsim.PathConfig
	}{
		{"lobby", camsim.PathConfig{Video: camsim.H264, Audio: camsim.AAC}},
		{"gate", camsim.PathConfig{Video: camsim.H265}},
		{"yard", camsim.PathConfig{Video: camsim.H264, Bitrate: 2_000_000}},
	}
	var cams []recorder.Camera
	for _, p := range paths {
		if err := sim.AddPath(p.name, p.cfg); err != nil {
			return err
		}
		cams = append(cams, recorder.Camera{Name: p.name, URL: "rtsp://" + rtspAddr + "/" + p.name})
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	defer stopSim()
	if err := sim.Start(simCtx); err != nil {
		return fmt.Errorf("start the camera simulator: %w", err)
	}
	defer sim.Close()

	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return err
	}
	token := hex.EncodeToString(tok[:])
	started := time.Now()
	opts.DataDir, opts.Cameras, opts.APIAddr, opts.APITokens = data, cams, apiAddr, map[string]string{token: "demo"}
	opts.Version, opts.BuildID, opts.Logger = env.Version, env.BuildID, log
	opts.Ready = func(addr net.Addr) {
		fmt.Fprintf(env.Stderr, `
demo: recording %d simulated cameras into %s. Try, in another terminal:
  curl -H 'Authorization: Bearer %s' http://%s/api/v1/status
  curl -H 'Authorization: Bearer %s' http://%s/api/v1/cameras
Stop with Ctrl-C (or "shutdown" on the console), then export what was recorded:
  ./bin/nvrd export --data %s --camera lobby --from -2m --to now -o lobby.mp4
%s
`, len(cams), data, token, addr, token, addr, data, logNote)
	}
	err = appliance.Run(ctx, opts)
	if errors.Is(err, appliance.ErrShutdownRequested) || errors.Is(err, appliance.ErrRebootRequested) {
		err = nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "demo: stopped cleanly after %s; footage is in %s\n", time.Since(started).Round(time.Second), data)
	return nil
}
