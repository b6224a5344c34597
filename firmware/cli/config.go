package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/nvrfw/nvr/firmware/config"
)

// configCommand is "nvrd config": offline tools for the configuration
// database (export for cloning a site, import onto a replacement box, the
// audit log).
func configCommand() *Command {
	return &Command{
		Name:    "config",
		Summary: "export, import, show and audit the configuration database",
		Usage: `Offline tools for the configuration database (a bbolt file on the persistent
configuration volume). A running nvrd holds the file: use the console or the
API then. The export file holds camera passwords in clear text and users'
password hashes: keep it as safe as the appliance.`,
		Sub: []*Command{configExport(), configImport(), configShow(), configAudit()},
	}
}

func openConfig(db string) (*config.Store, error) {
	if db == "" {
		return nil, usageErrorf("--db is required")
	}
	return config.Open(config.Options{Path: db})
}

func configExport() *Command {
	return &Command{
		Name:    "export",
		Summary: "write the whole site configuration as a checksummed text file",
		Usage:   "Writes the export file to --out, or to standard output.",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			db := fs.String("db", "", "the configuration database (required)")
			out := fs.String("out", "", "the file to write (default: standard output)")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("export takes no arguments")
				}
				s, err := openConfig(*db)
				if err != nil {
					return err
				}
				defer s.Close()
				if *out == "" {
					return s.Export(env.Stdout)
				}
				f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				if err := s.Export(f); err != nil {
					f.Close()
					return err
				}
				if err := f.Sync(); err != nil {
					f.Close()
					return fmt.Errorf("export: %w", err)
				}
				return f.Close()
			}
		},
	}
}

func configImport() *Command {
	return &Command{
		Name:    "import",
		Summary: "replace the whole configuration with an export file",
		Usage: `Checks the file's checksum and validates all of it, then replaces the whole
configuration in one transaction (nothing changes when any check fails).
Users, their password hashes, API token hashes and camera credentials come
from the file. The change is audited as "cli:import".`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			db := fs.String("db", "", "the configuration database (created when missing; required)")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) != 1 {
					return usageErrorf("import needs the export FILE")
				}
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				s, err := openConfig(*db)
				if err != nil {
					return err
				}
				defer s.Close()
				ch, err := s.Import("cli:import", args[0], f)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "imported: %s\n", ch.What)
				return nil
			}
		},
	}
}

func configShow() *Command {
	return &Command{
		Name:    "show",
		Summary: "print the configuration as JSON (secrets masked)",
		Usage:   "Prints the whole configuration as JSON; camera passwords are masked, hashes left out.",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			db := fs.String("db", "", "the configuration database (required)")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("show takes no arguments")
				}
				s, err := openConfig(*db)
				if err != nil {
					return err
				}
				defer s.Close()
				site, err := s.Site()
				if err != nil {
					return err
				}
				b, err := json.MarshalIndent(site, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s\n", b)
				return nil
			}
		},
	}
}

func configAudit() *Command {
	return &Command{
		Name:    "audit",
		Summary: "print the configuration audit log, newest first",
		Usage:   "Prints who changed what and when, newest first.",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			db := fs.String("db", "", "the configuration database (required)")
			limit := fs.Int("limit", 50, "how many entries")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 || *limit < 1 {
					return usageErrorf("audit takes no arguments and a positive --limit")
				}
				s, err := openConfig(*db)
				if err != nil {
					return err
				}
				defer s.Close()
				entries, err := s.Audit(0, *limit)
				if err != nil {
					return err
				}
				for _, e := range entries {
					fmt.Fprintf(env.Stdout, "%6d %s %-16s %s\n", e.Seq, e.Time.Format("2006-01-02T15:04:05Z"), e.Actor, e.What)
				}
				return nil
			}
		},
	}
}
