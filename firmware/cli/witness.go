package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

func witnessCommand() *Command {
	return &Command{
		Name:    "witness",
		Summary: "run the pair's third raft voter (no recording)",
		Usage: `Runs the witness of an appliance pair until SIGINT/SIGTERM: a raft voter that
breaks ties between the primary and the standby. It never records and never
holds the service address; if it wins an election it hands leadership to a
healthy data node at once. Small enough for any third box.

Pair first on a data node's console ("nvrd cluster pair"), then import this
node's bundle ("nvrd cluster import --config DIR witness.pem"). Example:

  nvrd witness --data /var/lib/nvr-witness --bind 10.0.0.3:7100 \
      --peers primary=10.0.0.1:7100,standby=10.0.0.2:7100`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			id := fs.String("id", "witness", "this node's `ID` (as in its pairing bundle)")
			data := fs.String("data", "", "raft data `directory` (required)")
			config := fs.String("config", "", "`directory` holding the imported pairing bundle (default: --data)")
			bind := fs.String("bind", "", "raft listen `address` host:port (required; also the address peers dial unless --advertise)")
			advertise := fs.String("advertise", "", "`address` the data nodes dial (default: --bind)")
			peers := fs.String("peers", "", "the two data nodes, `id=host:port,id=host:port` (required)")
			level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
			return func(ctx context.Context, env Env, args []string) error {
				if len(args) > 0 || *data == "" || *bind == "" || *peers == "" {
					return usageErrorf("witness needs --data, --bind and --peers and takes no arguments")
				}
				var lvl slog.Level
				if err := lvl.UnmarshalText([]byte(*level)); err != nil {
					return usageErrorf("--log-level %q: want debug, info, warn or error", *level)
				}
				ps, err := cluster.ParsePeers(*peers)
				if err != nil {
					return usageErrorf("--peers: %v", err)
				}
				if len(ps) != 2 {
					return usageErrorf("--peers: want the two data nodes, got %d", len(ps))
				}
				addr := *advertise
				if addr == "" {
					addr = *bind
				}
				ps = append(ps, cluster.Peer{ID: *id, Addr: addr, Witness: true})
				if *config == "" {
					*config = *data
				}
				b, err := pairing.Load(*config)
				if err != nil {
					return fmt.Errorf("witness: %w", err)
				}
				n, err := cluster.New(cluster.Options{ID: *id, Bind: *bind, Peers: ps, Dir: *data, Pairing: b, Logger: env.Logger(lvl)})
				if err != nil {
					return fmt.Errorf("witness: %w", err)
				}
				return n.Run(ctx)
			}
		},
	}
}
