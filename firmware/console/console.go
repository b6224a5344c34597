package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// Clock is the console's time source; tests inject a fake.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configures New. The zero value of each optional field means its
// default.
type Options struct {
	// Terminal is where the console talks: the kernel console tty in the
	// appliance, stdin/stdout in the demo, a pseudo-terminal in tests
	// (required). When it is a tty (it is a syscall.Conn, such as *os.File, and answers TCGETS), Run puts
	// it in raw mode (no kernel echo or line editing, 8N1) and restores it
	// on return. When it has SetReadDeadline, Run uses it to stop its
	// reader goroutine on return; otherwise Run waits for the pending Read
	// to return (the caller may close the terminal).
	Terminal io.ReadWriter
	// Config is the configuration store (required).
	Config ConfigStore
	// System is the running appliance (required).
	System System
	// Logger receives session events (logins, failures, logouts); default:
	// discard.
	Logger *slog.Logger
	// Clock defaults to the real clock.
	Clock Clock
	// Sleep waits out the delay after a failed login; default: a timer
	// honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// IdleTimeout logs a session out after no input for this long; default
	// 15 minutes.
	IdleTimeout time.Duration
	// LoginDelay is the wait after the first failed login, doubled after
	// each further failure in a row up to MaxLoginDelay; defaults 1s and 16s.
	LoginDelay, MaxLoginDelay time.Duration
	// MaxLine is the longest accepted line in bytes; default 1024.
	MaxLine int
	// Hostname is shown in the prompt and banner; default: the configured
	// network host name, else "nvr".
	Hostname string
	// Banner is printed before each login prompt; default "nvrd console".
	Banner string
}

// Console is the operator console on one terminal. Run serves it.
type Console struct {
	opts Options
	log  *slog.Logger
	in   *input
	ed   *lineEditor
	// fails counts failed logins in a row, for the growing delay.
	fails int

	runMu sync.Mutex
}

// New validates opts and returns a console ready to Run.
func New(opts Options) (*Console, error) {
	switch {
	case opts.Terminal == nil:
		return nil, errors.New("console: Options.Terminal is required")
	case opts.Config == nil:
		return nil, errors.New("console: Options.Config is required")
	case opts.System == nil:
		return nil, errors.New("console: Options.System is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 15 * time.Minute
	}
	if opts.LoginDelay <= 0 {
		opts.LoginDelay = time.Second
	}
	if opts.MaxLoginDelay <= 0 {
		opts.MaxLoginDelay = 16 * time.Second
	}
	if opts.MaxLoginDelay < opts.LoginDelay {
		return nil, fmt.Errorf("console: MaxLoginDelay %v is below LoginDelay %v", opts.MaxLoginDelay, opts.LoginDelay)
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = 1024
	}
	if opts.Banner == "" {
		opts.Banner = "nvrd console"
	}
	c := &Console{opts: opts, log: opts.Logger}
	c.ed = &lineEditor{c: c}
	return c, nil
}

// Run serves the console until ctx is done or the terminal's input ends
// (both return nil): login, a session, logout, and again. Run may be called
// again after it returns, but not concurrently.
func (c *Console) Run(ctx context.Context) error {
	if !c.runMu.TryLock() {
		return errors.New("console: Run is already running")
	}
	defer c.runMu.Unlock()
	// SyscallConn, not Fd: Fd would switch the file to blocking mode and
	// SetReadDeadline could no longer stop the reader.
	if f, ok := c.opts.Terminal.(syscall.Conn); ok {
		if rc, err := f.SyscallConn(); err == nil {
			var restore func() error
			var rawErr error
			if err := rc.Control(func(fd uintptr) { restore, _, rawErr = makeRaw(int(fd)) }); err != nil {
				return fmt.Errorf("console: terminal: %w", err)
			}
			if rawErr != nil {
				return rawErr
			}
			if restore != nil {
				defer func() {
					_ = rc.Control(func(uintptr) { _ = restore() })
				}()
			}
		}
	}
	c.in = startInput(c.opts.Terminal)
	defer c.stopInput()
	c.ed.pending = nil
	for {
		err := c.loginAndServe(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errInputClosed):
			if c.in.err != nil && !errors.Is(c.in.err, io.EOF) && !errors.Is(c.in.err, os.ErrDeadlineExceeded) {
				c.log.Warn("console input ended", "err", c.in.err)
			}
			return nil
		case err != nil:
			return err
		}
	}
}

// stopInput ends the reader goroutine and waits for it.
func (c *Console) stopInput() {
	close(c.in.stop)
	if d, ok := c.opts.Terminal.(interface{ SetReadDeadline(time.Time) error }); ok {
		if err := d.SetReadDeadline(time.Unix(1, 0)); err == nil {
			defer func() { _ = d.SetReadDeadline(time.Time{}) }()
		}
	}
	<-c.in.done
}

// loginAndServe runs one login prompt and, on success, one session. It
// returns nil to go round again.
func (c *Console) loginAndServe(ctx context.Context) error {
	if err := c.firstRun(); err != nil {
		c.printf("error: %s\n", oneLine(err))
	}
	c.printf("\n%s on %s\n", c.opts.Banner, c.hostname())
	name, err := c.ed.readLine(ctx, "login: ", readOpts{echo: true, idle: c.opts.IdleTimeout})
	switch {
	case errors.Is(err, errInterrupted), errors.Is(err, errLogout), errors.Is(err, errIdle), errors.Is(err, errLineTooLong):
		return nil
	case err != nil:
		return err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil
	}
	pw, err := c.ed.readLine(ctx, "Password: ", readOpts{idle: c.opts.IdleTimeout})
	switch {
	case errors.Is(err, errInterrupted), errors.Is(err, errLogout), errors.Is(err, errIdle), errors.Is(err, errLineTooLong):
		return nil
	case err != nil:
		return err
	}
	u, err := c.opts.Config.Authenticate(name, pw)
	if err != nil {
		c.fails++
		delay := c.opts.LoginDelay << min(c.fails-1, 20)
		if delay > c.opts.MaxLoginDelay || delay <= 0 {
			delay = c.opts.MaxLoginDelay
		}
		c.log.Warn("console login failed", "user", sanitize(name), "failures", c.fails, "delay", delay)
		if err := c.opts.Sleep(ctx, delay); err != nil {
			return err
		}
		c.ed.drain()
		c.printf("Login incorrect\n")
		return nil
	}
	c.fails = 0
	c.log.Info("console login", "user", u.Name, "role", u.Role)
	s := &session{c: c, user: u, actor: "console:" + u.Name}
	err = s.serve(ctx)
	c.log.Info("console logout", "user", u.Name)
	return err
}

// firstRun creates the first admin when no user exists and prints its
// password, once.
func (c *Console) firstRun() error {
	site, err := c.opts.Config.Site()
	if err != nil {
		return err
	}
	if len(site.Users) > 0 {
		return nil
	}
	pw, created, err := c.opts.Config.EnsureAdmin("console:first-run")
	if err != nil || !created {
		return err
	}
	c.printf("\nFirst start: created user %q with password %s\n", config.FirstAdmin, pw)
	c.printf("It is shown only this once; you must change it at first login.\n")
	return nil
}

// hostname is the name shown in prompts.
func (c *Console) hostname() string {
	if c.opts.Hostname != "" {
		return c.opts.Hostname
	}
	if site, err := c.opts.Config.Site(); err == nil && site.Network.Hostname != "" {
		return site.Network.Hostname
	}
	return "nvr"
}

// drain drops input typed while a login delay ran.
func (e *lineEditor) drain() {
	e.pending = nil
	for {
		select {
		case b, ok := <-e.c.in.ch:
			if !ok {
				return
			}
			_ = b
		default:
			return
		}
	}
}

func (c *Console) write(b []byte) { _, _ = c.opts.Terminal.Write(b) }

func (c *Console) writeString(s string) { c.write([]byte(s)) }

// printf writes to the terminal with LF turned into CRLF.
func (c *Console) printf(format string, a ...any) {
	c.writeString(strings.ReplaceAll(fmt.Sprintf(format, a...), "\n", "\r\n"))
}

// oneLine renders err as one printable line.
func oneLine(err error) string { return sanitize(err.Error()) }

// sanitize keeps text on one printable line.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
