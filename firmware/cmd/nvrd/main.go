// Command nvrd is the appliance's one program: the recorder daemon, the store
// tools, the exporter and the firmware tools, as subcommands. See nvrd --help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nvrfw/nvr/firmware/cli"
)

// version and buildID are stamped by the Makefile (-ldflags -X).
var (
	version = "dev"
	buildID = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Version: version,
		BuildID: buildID,
	})
	stop()
	os.Exit(code)
}
