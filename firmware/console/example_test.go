package console_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"syscall"

	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/console"
)

// Wiring the console on the appliance's serial console (the lead's nvrd
// run does this with its own System). On the demo, use
// console.NewStdio(os.Stdin, os.Stdout) as the Terminal instead, and Close it
// after Run returns.
func Example() {
	var sys console.System // the appliance's implementation
	store, err := config.Open(config.Options{Path: "/perm/nvrd/config.db"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tty, err := os.OpenFile("/dev/ttyS0", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer tty.Close()
	c, err := console.New(console.Options{Terminal: tty, Config: store, System: sys, Logger: slog.Default()})
	if err != nil {
		log.Fatal(err)
	}
	// Run returns when ctx is cancelled (nvrd shutting down).
	if err := c.Run(context.Background()); err != nil {
		log.Print(err)
	}
}
