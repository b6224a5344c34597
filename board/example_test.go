package board_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/hardware"
	"github.com/nvrfw/nvr/board/profiles"
)

func ExampleParseProfile() {
	p, err := board.ParseProfile("lab.board", []byte(`model lab-1u
psu PSU1 bus=1 addr=0x58   # the only PSU
bay BAY0 present=gpiochip0:3 locate-led=gpiochip0:10
raid md0 role=recording
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, _ := p.RecordingArray()
	fmt.Printf("%s: %d PSU, %d bay, recording on %s\n", p.Model, len(p.PSUs), len(p.Bays), rec.Name)

	_, err = board.ParseProfile("lab.board", []byte("model lab-1u\npsu PSU1 bus=1 addr=0x98\n"))
	fmt.Println(err)
	// Output:
	// lab-1u: 1 PSU, 1 bay, recording on md0
	// board profile lab.board:2: psu PSU1: addr="0x98": want an integer in 0x3..0x77
}

// Example_monitor shows how nvrd run wires the board: host.Init in main,
// then bind the profile, watch, and forward events.
func Example_monitor() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	text, _ := profiles.Lookup("generic-x86-2u")
	p, err := board.ParseProfile("generic-x86-2u", text)
	if err != nil {
		log.Error("board profile", "err", err)
		return
	}
	hw, err := hardware.Open(p, hardware.Options{})
	if err != nil && !errors.Is(err, hardware.ErrUnbound) {
		log.Error("board hardware", "err", err)
		return
	}
	if err != nil {
		log.Warn("board hardware partly unbound", "err", err) // keep recording
	}
	defer hw.Close()
	opts := hw.MonitorOptions()
	opts.WatchdogReset = false // from watchdog.Device.Boot
	opts.OnEvent = func(e board.Event) {
		level := slog.LevelInfo
		if e.Kind.Alarm() {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "board event", "kind", e.Kind, "source", e.Source, "faults", e.Faults, "detail", e.Detail)
	}
	m, err := board.NewMonitor(opts)
	if err != nil {
		log.Error("board monitor", "err", err)
		return
	}
	_ = m.Run(ctx) // until shutdown; m.Status() feeds "show board" and the API
}
