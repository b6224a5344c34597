package watchdog_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nvrfw/nvr/watchdog"
)

// Example shows how nvrd run wires the watchdog: open it, record the boot
// reason, guard it with the store's commit progress and a main-loop
// heartbeat, and disarm it on a clean shutdown.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	dev, err := watchdog.Open("/dev/watchdog0")
	if errors.Is(err, os.ErrNotExist) {
		log.Warn("no hardware watchdog", "err", err)
		return
	}
	if err != nil {
		log.Error("watchdog", "err", err)
		return
	}
	if boot, err := dev.Boot(); err == nil {
		counts, err := watchdog.RecordBoot("/var/lib/nvr/bootcount", boot)
		log.Info("boot", "watchdog_reset", boot.WatchdogReset, "boots", counts.Boots, "watchdog_resets", counts.WatchdogResets, "err", err)
	}

	g, err := watchdog.New(watchdog.Options{Device: dev, Timeout: 30 * time.Second, Logger: log})
	if err != nil {
		log.Error("watchdog guard", "err", err)
		return
	}
	var lastCommit atomic.Int64 // the store's durable watermark time, set by its writer
	lastCommit.Store(time.Now().UnixNano())
	_ = g.AddCheck("store-commit", watchdog.Recent(func() time.Time { return time.Unix(0, lastCommit.Load()) }, 20*time.Second))
	loop, _ := g.Heartbeat("recorder-loop", 20*time.Second)
	go func() {
		for ctx.Err() == nil {
			loop.Beat() // each iteration of the recorder's supervisor loop
			time.Sleep(time.Second)
		}
	}()

	// A firmware install keeps the watchdog petted while it writes.
	if h, err := g.Hold("firmware install", 10*time.Minute); err == nil {
		defer h.Release()
	}

	_ = g.Run(ctx)  // until shutdown
	_ = dev.Close() // clean shutdown: disarm with the magic close
}
