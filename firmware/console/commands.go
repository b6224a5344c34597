package console

import (
	"context"
	"fmt"
	"strings"

	"github.com/nvrfw/nvr/firmware/config"
)

// command is one console command, or a group when subs is set.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string // one line for help lists
	help    string // more text for "help CMD"
	// role is the least role allowed to run the command.
	role config.Role
	// json adds --json (machine-readable output) to flags.
	json  bool
	flags map[string]flagKind
	run   func(ctx context.Context, s *session, a parsedArgs) error
	subs  []*command
}

// commands is the console's command tree.
func commands() []*command {
	return []*command{
		{name: "help", args: "[COMMAND [SUBCOMMAND]]", summary: "list commands, or explain one", role: config.RoleViewer, run: runHelp},
		{name: "show", summary: "show the recorder's state", subs: []*command{
			{name: "status", args: "[--json]", summary: "cameras recording, retention held, alarms", role: config.RoleViewer, json: true, run: runShowStatus},
			{name: "board", args: "[--json]", summary: "PSUs, drive bays and RAID arrays", role: config.RoleViewer, json: true, run: runShowBoard},
			clusterShowCommand(),
			recordingsShowCommand(),
		}},
		camerasCommand(),
		storageCommand(),
		networkCommand(),
		timeCommand(),
		usersCommand(),
		tokensCommand(),
		configCommand(),
		clusterCommand(),
		{name: "events", args: "[--audit | --system] [--limit N] [--json]", summary: "the event log and the configuration audit log, newest first",
			role: config.RoleViewer, json: true, flags: map[string]flagKind{"audit": boolFlag, "system": boolFlag, "limit": valueFlag}, run: runEvents},
		firmwareCommand(),
		{name: "reboot", summary: "restart the appliance (asks to confirm)", role: config.RoleAdmin, run: runReboot},
		{name: "shutdown", summary: "power the appliance off (asks to confirm)", role: config.RoleAdmin, run: runShutdown},
		{name: "logout", summary: "end the session (also exit, Ctrl-D)", role: config.RoleViewer, run: func(context.Context, *session, parsedArgs) error { return errLogout }},
	}
}

// lookup finds the command words name and returns the rest of the words.
func lookup(cmds []*command, words []string) (cmd *command, path string, rest []string, err error) {
	var names []string
	for i, w := range words {
		var found *command
		for _, c := range cmds {
			if c.name == w {
				found = c
			}
		}
		if found == nil {
			if cmd == nil {
				return nil, "", nil, fmt.Errorf("unknown command %q (type \"help\" for the list)", sanitize(w))
			}
			if cmd.run == nil {
				p := strings.Join(names, " ")
				return nil, "", nil, fmt.Errorf("unknown subcommand %q of %s: try %s (see \"help %s\")", sanitize(w), p, subNames(cmd), p)
			}
			return cmd, strings.Join(names, " "), words[i:], nil
		}
		cmd = found
		names = append(names, w)
		cmds = found.subs
	}
	return cmd, strings.Join(names, " "), nil, nil
}

func subNames(c *command) string {
	var n []string
	for _, s := range c.subs {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

func runHelp(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) == 0 {
		var b strings.Builder
		b.WriteString("commands (\"help COMMAND\" for details; quote words with spaces):\n")
		for _, c := range commands() {
			fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
		}
		b.WriteString("keys: Backspace, Ctrl-U erase line, Ctrl-W erase word, Ctrl-C cancel, Ctrl-D log out, Up/Down history\n")
		s.c.printf("%s", b.String())
		return nil
	}
	cmd, path, rest, err := lookup(commands(), a.pos)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%s has no subcommand %q", path, sanitize(rest[0]))
	}
	var b strings.Builder
	if cmd.run != nil {
		fmt.Fprintf(&b, "usage: %s %s\n  %s", path, cmd.args, cmd.summary)
		if cmd.role != "" && cmd.role != config.RoleViewer {
			fmt.Fprintf(&b, " (role %s)", cmd.role)
		}
		b.WriteString("\n")
		if cmd.help != "" {
			b.WriteString(cmd.help + "\n")
		}
	} else {
		fmt.Fprintf(&b, "%s: %s\n", path, cmd.summary)
		for _, sub := range cmd.subs {
			fmt.Fprintf(&b, "  %s %s %s\n      %s\n", path, sub.name, sub.args, sub.summary)
		}
	}
	s.c.printf("%s", b.String())
	return nil
}
