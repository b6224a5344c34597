package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// session is one logged-in user on the console.
type session struct {
	c     *Console
	user  config.User
	actor string
}

// errUsage marks a command line mistake; the message says what is wrong.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// errCancelled is returned by an interactive prompt the operator left.
var errCancelled = errors.New("cancelled")

// serve runs the session until logout, idle timeout or the end of input.
func (s *session) serve(ctx context.Context) error {
	if s.user.MustChangePassword {
		s.c.printf("You must change your password now.\n")
		if err := s.newPassword(ctx, s.user.Name); err != nil {
			if errors.Is(err, errInputClosed) || ctx.Err() != nil {
				return err
			}
			s.c.printf("error: %s\nlogged out\n", oneLine(err))
			return nil
		}
	}
	s.c.printf("Logged in as %s (%s). Type \"help\" for commands, Ctrl-D to log out.\n", s.user.Name, s.user.Role)
	for {
		prompt := fmt.Sprintf("%s@%s> ", s.user.Name, s.c.hostname())
		line, err := s.c.ed.readLine(ctx, prompt, readOpts{echo: true, history: true, idle: s.c.opts.IdleTimeout})
		switch {
		case errors.Is(err, errInterrupted):
			continue
		case errors.Is(err, errLogout):
			s.c.printf("logout\n")
			return nil
		case errors.Is(err, errIdle):
			s.c.printf("idle for %v: logged out\n", s.c.opts.IdleTimeout)
			return nil
		case errors.Is(err, errLineTooLong):
			s.c.printf("error: line longer than %d bytes\n", s.c.opts.MaxLine)
			continue
		case err != nil:
			return err
		}
		if done, err := s.execLine(ctx, line); done || err != nil {
			return err
		}
	}
}

// execLine runs one command line; done means log out. Every failure prints
// exactly one "error: ..." line; a returned error ends the session (the
// terminal is gone or ctx is done).
func (s *session) execLine(ctx context.Context, line string) (done bool, err error) {
	words, err := ParseLine(line, s.c.opts.MaxLine)
	if err != nil {
		s.c.printf("error: %s\n", oneLine(err))
		return false, nil
	}
	if len(words) == 0 {
		return false, nil
	}
	if words[0] == "logout" || words[0] == "exit" || words[0] == "quit" {
		s.c.printf("logout\n")
		return true, nil
	}
	err = s.exec(ctx, words)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, errInputClosed), ctx.Err() != nil:
		return true, err
	case errors.Is(err, errLogout), errors.Is(err, errIdle):
		return true, nil
	case errors.Is(err, errCancelled), errors.Is(err, errInterrupted):
		s.c.printf("cancelled\n")
	default:
		s.c.printf("error: %s\n", oneLine(err))
	}
	return false, nil
}

// exec finds and runs the command named by words.
func (s *session) exec(ctx context.Context, words []string) error {
	cmd, path, rest, err := lookup(commands(), words)
	if err != nil {
		return err
	}
	// Roles are checked against the stored user, so a removed user or a
	// changed role takes effect in open sessions too.
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	u, ok := site.User(s.user.Name)
	if !ok {
		s.c.printf("your account no longer exists: logged out\n")
		return errLogout
	}
	s.user = u
	if cmd.run == nil {
		return usagef("%s needs a subcommand: %s (see \"help %s\")", path, subNames(cmd), path)
	}
	if !s.user.Role.Allows(cmd.role) {
		return fmt.Errorf("permission denied: %q needs the %s role, you are %s", path, cmd.role, s.user.Role)
	}
	spec := cmd.flags
	if cmd.json {
		spec = withJSON(spec)
	}
	args, err := parseFlags(rest, spec)
	if err != nil {
		return usagef("%v (usage: %s %s)", err, path, cmd.args)
	}
	if err := cmd.run(ctx, s, args); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			return usagef("%s (usage: %s %s)", ue.msg, path, cmd.args)
		}
		return err
	}
	return nil
}

func withJSON(spec map[string]flagKind) map[string]flagKind {
	out := map[string]flagKind{"json": boolFlag}
	for k, v := range spec {
		out[k] = v
	}
	return out
}

// apply commits a configuration change as this session's user.
func (s *session) apply(m config.Mutation) (config.Change, error) {
	return s.c.opts.Config.Apply(s.actor, m)
}

// ask reads one answer line (echo off for secrets); Ctrl-C gives
// errCancelled.
func (s *session) ask(ctx context.Context, prompt string, echo bool) (string, error) {
	line, err := s.c.ed.readLine(ctx, prompt, readOpts{echo: echo, idle: s.c.opts.IdleTimeout})
	switch {
	case errors.Is(err, errInterrupted), errors.Is(err, errLineTooLong):
		return "", errCancelled
	case errors.Is(err, errLogout):
		return "", errCancelled
	}
	return line, err
}

// confirm asks the operator to type want exactly.
func (s *session) confirm(ctx context.Context, prompt, want string) error {
	got, err := s.ask(ctx, prompt, true)
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != want {
		return fmt.Errorf("not confirmed (you had to type %q): nothing done", want)
	}
	return nil
}

// newPassword asks for a new password twice and sets it for user.
func (s *session) newPassword(ctx context.Context, user string) error {
	for range 3 {
		pw, err := s.ask(ctx, "New password: ", false)
		if err != nil {
			return err
		}
		if err := config.CheckPassword(pw); err != nil {
			s.c.printf("error: %s\n", oneLine(err))
			continue
		}
		again, err := s.ask(ctx, "Retype new password: ", false)
		if err != nil {
			return err
		}
		if again != pw {
			s.c.printf("error: the passwords differ\n")
			continue
		}
		if _, err := s.apply(config.SetPassword{Name: user, Password: pw}); err != nil {
			return err
		}
		s.c.printf("password of %s changed\n", user)
		return nil
	}
	return errors.New("password not changed after three attempts")
}

// printJSON writes v as indented JSON.
func (s *session) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	s.c.printf("%s\n", b)
	return nil
}

// parseAge reads a retention: "0", "off" or "none" (no age limit), a Go
// duration ("36h"), or a number of days or weeks ("30d", "2w").
func parseAge(v string) (time.Duration, error) {
	switch v {
	case "0", "off", "none":
		return 0, nil
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			k, err := strconv.Atoi(n)
			if err != nil || k < 0 || k > 100000 {
				return 0, usagef("%q is not a duration (30d, 2w, 36h, off)", v)
			}
			return time.Duration(k) * unit, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("%q is not a duration (30d, 2w, 36h, off)", v)
	}
	return d, nil
}

// formatAge prints a retention the way parseAge reads it.
func formatAge(d time.Duration) string {
	switch {
	case d == 0:
		return "off"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// formatHeld prints how much footage is held ("13d 4h").
func formatHeld(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	days, hours := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd %dh", days, hours)
	}
	return fmt.Sprintf("%dh %dm", hours, (d%time.Hour)/time.Minute)
}
