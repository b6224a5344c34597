// Package cli is nvrd's command-line facade: it parses the command line,
// dispatches to the subcommand, and maps errors to exit codes. Each command
// family lives in its own file and does little more than parse flags and call
// the package that owns the work.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Version and BuildID are stamped into the binary at build time.
	Version, BuildID string
}

// Logger returns a structured logger writing to Stderr at the given level.
func (e Env) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: level}))
}

// Command is one subcommand, or a group of them when Sub is set.
type Command struct {
	Name    string
	Summary string // one line, shown in the parent's help
	// Usage is the full help text shown by "nvrd CMD --help", after the
	// synopsis; flags are listed after it.
	Usage string
	// Flags declares the command's flags on fs and returns the function that
	// runs the command once they are parsed; args are the positional rest.
	Flags func(fs *flag.FlagSet) func(ctx context.Context, env Env, args []string) error
	Sub   []*Command
}

// ExitError makes Main exit with Code after printing Err (when non-nil).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// usageErrorf reports a command-line mistake.
func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// Root returns nvrd's command tree.
func Root() *Command {
	return &Command{
		Name:    "nvrd",
		Summary: "appliance network video recorder",
		Usage: `nvrd records IP cameras into a crash-safe ring store on the local volume.
Run "nvrd COMMAND --help" for a command's flags.`,
		Sub: []*Command{
			versionCommand(),
			runCommand(),
			demoCommand(),
			camsimCommand(),
			firmwareCommand(),
			storeCommand(),
			exportCommand(),
			boardCommand(),
			configCommand(),
			witnessCommand(),
			clusterCommand(),
		},
	}
}

// Main runs nvrd with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	root := Root()
	err := dispatch(ctx, env, root, []string{root.Name}, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "nvrd: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(env.Stderr, "nvrd: %v\n", err)
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, env Env, cmd *Command, path []string, args []string) error {
	if len(cmd.Sub) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			printGroupHelp(env.Stdout, cmd, path)
			if len(args) == 0 {
				return usageErrorf("%s needs a command", strings.Join(path, " "))
			}
			return nil
		}
		if args[0] == "--version" && len(path) == 1 {
			fmt.Fprintf(env.Stdout, "nvrd %s (build %s)\n", env.Version, env.BuildID)
			return nil
		}
		for _, sub := range cmd.Sub {
			if sub.Name == args[0] {
				return dispatch(ctx, env, sub, append(path, sub.Name), args[1:])
			}
		}
		return usageErrorf("unknown command %q for %s (see %s --help)", args[0], strings.Join(path, " "), strings.Join(path, " "))
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	run := cmd.Flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "usage: %s [flags]\n\n%s\n", strings.Join(path, " "), cmd.Usage)
		if hasFlags(fs) {
			fmt.Fprintln(env.Stdout, "\nflags:")
			fs.SetOutput(env.Stdout)
			fs.PrintDefaults()
			fs.SetOutput(env.Stderr)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	return run(ctx, env, fs.Args())
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func printGroupHelp(w io.Writer, cmd *Command, path []string) {
	fmt.Fprintf(w, "usage: %s COMMAND [flags]\n\n%s\n\ncommands:\n", strings.Join(path, " "), cmd.Usage)
	subs := append([]*Command(nil), cmd.Sub...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
	for _, s := range subs {
		fmt.Fprintf(w, "  %-10s %s\n", s.Name, s.Summary)
	}
}

func versionCommand() *Command {
	return &Command{
		Name:    "version",
		Summary: "print the firmware version and build identity",
		Usage:   "Prints the version and build identity stamped into this binary.",
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			return func(_ context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("version takes no arguments")
				}
				fmt.Fprintf(env.Stdout, "nvrd %s (build %s)\n", env.Version, env.BuildID)
				return nil
			}
		},
	}
}

// stdoutIsTerminal reports whether progress bars can redraw in place.
func stdoutIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
