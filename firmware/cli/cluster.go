package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

func clusterCommand() *Command {
	return &Command{
		Name:    "cluster",
		Summary: "pair appliances (keys for the primary, standby and witness)",
		Usage: `Pairing of an appliance pair. "pair" makes the pair's CA, one certificate per
node and the heartbeat key, and writes one bundle per node; copy each bundle
to its node and "import" it there. Role state, switchover and "show cluster"
are on the console and the API of a running nvrd.`,
		Sub: []*Command{clusterPairCommand(), clusterImportCommand()},
	}
}

func clusterPairCommand() *Command {
	return &Command{
		Name:    "pair",
		Summary: "make the pair's keys: one bundle per node",
		Usage: `Makes a new CA (ECDSA P-256), a certificate and key per node, and the pair's
heartbeat HMAC key, and writes OUT/NODE.pem (mode 0600) for every node. The CA
key is not kept: re-pairing makes new keys for all nodes. Example:

  nvrd cluster pair --nodes primary,standby,witness --out /tmp/pairing`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			nodes := fs.String("nodes", "primary,standby,witness", "node `IDs`, comma separated")
			out := fs.String("out", "", "`directory` for the bundles (required)")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 || *out == "" {
					return usageErrorf("cluster pair needs --out and takes no arguments")
				}
				ids := strings.Split(*nodes, ",")
				bs, err := pairing.Pair(ids)
				if err != nil {
					return err
				}
				if err := os.MkdirAll(*out, 0o700); err != nil {
					return fmt.Errorf("cluster pair: %w", err)
				}
				for _, b := range bs {
					data, err := b.Marshal()
					if err != nil {
						return err
					}
					p := filepath.Join(*out, b.NodeID+".pem")
					if err := os.WriteFile(p, data, 0o600); err != nil {
						return fmt.Errorf("cluster pair: %w", err)
					}
					fmt.Fprintf(env.Stdout, "%s\n", p)
				}
				return nil
			}
		},
	}
}

func clusterImportCommand() *Command {
	return &Command{
		Name:    "import",
		Summary: "install this node's pairing bundle",
		Usage: `Checks BUNDLE (the node certificate must be signed by the bundle's CA and
match its key) and installs it as CONFIG/pair-bundle.pem. Example:

  nvrd cluster import --config /config standby.pem`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			config := fs.String("config", "", "config `directory` (required)")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) != 1 || *config == "" {
					return usageErrorf("cluster import needs --config and one BUNDLE file")
				}
				data, err := os.ReadFile(args[0])
				if err != nil {
					return fmt.Errorf("cluster import: %w", err)
				}
				b, err := pairing.ParseBundle(data)
				if err != nil {
					return err
				}
				if err := b.Save(*config); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "imported the bundle of node %s into %s\n", b.NodeID, *config)
				return nil
			}
		},
	}
}
