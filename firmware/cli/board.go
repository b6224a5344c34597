package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/hardware"
	"github.com/nvrfw/nvr/board/profiles"
	"github.com/nvrfw/nvr/watchdog"
	"periph.io/x/host/v3"
)

// boardCommand is "nvrd board": board profiles, live hardware health, the
// watchdog's state.
func boardCommand() *Command {
	return &Command{
		Name:    "board",
		Summary: "board profiles, PSU/bay/RAID health, watchdog state",
		Usage: `Board profiles say where each PSU, drive bay and RAID array of a hardware model
is; show prints one, and with --live reads the hardware it names. watchdog
prints the hardware watchdog's state from sysfs without touching the device.`,
		Sub: []*Command{boardProfiles(), boardShow(), boardWatchdog()},
	}
}

func boardProfiles() *Command {
	return &Command{
		Name:    "profiles",
		Summary: "list the built-in board profiles",
		Usage:   "Lists the board profiles built into nvrd (use one with show --profile NAME).",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("profiles takes no arguments")
				}
				for _, n := range profiles.Names() {
					fmt.Fprintln(env.Stdout, n)
				}
				return nil
			}
		},
	}
}

// loadProfile reads a built-in profile by name, or a profile file when
// name looks like a path.
func loadProfile(name string) (*board.Profile, error) {
	var text []byte
	var err error
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".board") {
		text, err = os.ReadFile(name)
	} else {
		text, err = profiles.Lookup(name)
	}
	if err != nil {
		return nil, err
	}
	return board.ParseProfile(name, text)
}

func boardShow() *Command {
	return &Command{
		Name:    "show",
		Summary: "print a board profile, and with --live the hardware's health",
		Usage: `Prints the profile in canonical form. With --live, binds it to this machine's
devices (/dev/i2c-N, GPIO chips, /sys/block/mdX), reads them for --for, and
prints each PSU, bay and array, and the events seen.

examples:
  nvrd board show --profile qemu
  nvrd board show --profile /etc/nvr/board.board --live`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			name := fs.String("profile", "", "built-in profile NAME or profile FILE (required)")
			live := fs.Bool("live", false, "read the hardware the profile names")
			dur := fs.Duration("for", 1500*time.Millisecond, "with --live: how long to watch")
			asJSON := fs.Bool("json", false, "with --live: print the status as JSON instead of tables")
			return func(ctx context.Context, env Env, args []string) error {
				if *name == "" || len(args) > 0 {
					return usageErrorf("show needs --profile and no arguments")
				}
				if *dur <= 0 || *dur > time.Minute {
					return usageErrorf("--for %v: want (0, 1m]", *dur)
				}
				p, err := loadProfile(*name)
				if err != nil {
					return err
				}
				if *asJSON && !*live {
					return usageErrorf("--json needs --live")
				}
				if !*asJSON {
					env.Stdout.Write(p.Format())
				}
				if !*live {
					return nil
				}
				return showLive(ctx, env, p, *dur, *asJSON)
			}
		},
	}
}

func showLive(ctx context.Context, env Env, p *board.Profile, d time.Duration, asJSON bool) error {
	if _, err := host.Init(); err != nil {
		fmt.Fprintf(env.Stderr, "nvrd: periph host init: %v (GPIO lines unavailable)\n", err)
	}
	h, err := hardware.Open(p, hardware.Options{})
	if err != nil && !errors.Is(err, hardware.ErrUnbound) {
		return err
	}
	defer h.Close()
	if err != nil {
		fmt.Fprintf(env.Stderr, "nvrd: %v\n", err)
	}
	opts := h.MonitorOptions()
	opts.PollInterval = d / 3
	m, err := board.NewMonitor(opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m.Status())
	}
	printBoardStatus(env.Stdout, m.Status())
	return nil
}

func printBoardStatus(w io.Writer, st board.Status) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "\nPSU\tSTATE\tVIN\tVOUT\tIOUT\tPOUT\tTEMP\tMODEL\tFAULTS/WARNINGS")
	for _, p := range st.PSUs {
		state := "unknown"
		switch {
		case p.Unresponsive:
			state = "unresponsive"
		case p.Err != "":
			state = "error: " + p.Err
		case p.Known && !p.Present:
			state = "absent"
		case p.Known && len(p.Faults) > 0:
			state = "faulted"
		case p.Known:
			state = "ok"
		}
		r := p.Reading
		fmt.Fprintf(tw, "%s\t%s\t%.1fV\t%.2fV\t%.2fA\t%.0fW\t%.1fC\t%s %s\t%s\n", p.Name, state, r.VIn, r.VOut, r.IOut, r.POut, r.Temperature,
			r.Identity.Manufacturer, r.Identity.Model, strings.Join(append(r.Faults(), r.Warnings()...), ","))
	}
	fmt.Fprintln(tw, "\nBAY\tSTATE\tFAULT LED\tLOCATE LED")
	for _, b := range st.Bays {
		state := "unknown"
		switch {
		case b.Err != "":
			state = "error: " + b.Err
		case b.Known && b.Present:
			state = "drive present"
		case b.Known:
			state = "empty"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Name, state, led(b.HasFault, b.Fault), led(b.HasLocate, b.Locate))
	}
	fmt.Fprintln(tw, "\nARRAY\tHEALTH\tSTATE\tLEVEL\tMEMBERS\tSYNC")
	for _, a := range st.Arrays {
		name := a.Name
		if a.Recording {
			name += " (recording)"
		}
		health := a.Health.String()
		if a.Err != "" {
			health += ": " + a.Err
		}
		var members []string
		for _, m := range a.Array.Members {
			members = append(members, m.Device+"["+strings.Join(m.State, ",")+"]")
		}
		sync := a.Array.SyncAction
		if a.Progress >= 0 {
			sync += fmt.Sprintf(" %.1f%%", a.Progress*100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, health, a.Array.State, a.Array.Level, strings.Join(members, " "), sync)
	}
	if len(st.Events) > 0 {
		fmt.Fprintln(tw, "\nEVENTS")
		for _, e := range st.Events {
			fmt.Fprintf(tw, "%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e)
		}
	}
}

func led(has, on bool) string {
	switch {
	case !has:
		return "-"
	case on:
		return "on"
	}
	return "off"
}

func boardWatchdog() *Command {
	return &Command{
		Name:    "watchdog",
		Summary: "print the hardware watchdog's state (from sysfs; does not arm it)",
		Usage: `Prints each watchdog's identity, whether it runs, its timeout and time left,
and whether the last reset was a watchdog reset, from /sys/class/watchdog.
Opening /dev/watchdog would arm it, so this command never does.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			sysRoot := fs.String("sysfs", "/sys", "sysfs root")
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("watchdog takes no arguments")
				}
				sys := os.DirFS(*sysRoot)
				names, err := watchdog.ListSysfs(sys)
				if err != nil {
					return err
				}
				if len(names) == 0 {
					return &ExitError{Code: 1, Err: fmt.Errorf("no watchdog under %s/class/watchdog", *sysRoot)}
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 8, 2, ' ', 0)
				defer tw.Flush()
				fmt.Fprintln(tw, "WATCHDOG\tIDENTITY\tSTATE\tTIMEOUT\tLEFT\tPRETIMEOUT\tNOWAYOUT\tLAST RESET")
				for _, n := range names {
					s, err := watchdog.ReadSysfs(sys, n)
					if err != nil {
						fmt.Fprintf(tw, "%s\terror: %v\n", n, err)
						continue
					}
					state, reset := "inactive", "not by watchdog"
					if s.Active {
						state = "active"
					}
					if s.WatchdogReset() {
						reset = "WATCHDOG RESET"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%v\t%v\t%s\n", n, s.Identity, state, s.Timeout, s.TimeLeft, s.PreTimeout, s.NoWayOut, reset)
				}
				return nil
			}
		},
	}
}
