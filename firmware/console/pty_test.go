package console

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/nvrfw/nvr/firmware/config"
)

var fastArgon = config.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

// harness runs a Console on the slave side of a real pseudo-terminal and
// types on the master side like a person.
type harness struct {
	t      *testing.T
	ptmx   *os.File
	tty    *os.File
	store  *config.Store
	path   string
	sys    *fakeSystem
	sleep  *fakeSleeper
	cancel context.CancelFunc
	done   chan error
	readWG sync.WaitGroup

	mu  sync.Mutex
	out bytes.Buffer // everything the console wrote
	pos int          // how far expect has consumed out
}

func openStore(t *testing.T, path string) *config.Store {
	t.Helper()
	s, err := config.Open(config.Options{Path: path, Argon2: fastArgon})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startHarness starts a console on a fresh pty; edit adjusts its options.
func startHarness(t *testing.T, path string, edit func(*Options)) *harness {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	h := &harness{t: t, ptmx: ptmx, tty: tty, path: path, store: openStore(t, path), sys: newFakeSystem(), sleep: &fakeSleeper{}, done: make(chan error, 1)}
	opts := Options{Terminal: tty, Config: h.store, System: h.sys, Sleep: h.sleep.sleep}
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.readWG.Add(1)
	go func() {
		defer h.readWG.Done()
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			h.mu.Lock()
			h.out.Write(buf[:n])
			h.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		h.stop()
		checkGoroutines(t, goroutines)
	})
	return h
}

// stop ends the console and closes everything; it is idempotent.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return after cancel")
	}
	h.tty.Close()
	h.ptmx.Close()
	h.readWG.Wait()
	if err := h.store.Check(); err != nil {
		h.t.Errorf("config check: %v", err)
	}
	h.store.Close()
}

// checkGoroutines fails when goroutines started by the test remain.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) typeRaw(s string) {
	h.t.Helper()
	if _, err := h.ptmx.Write([]byte(s)); err != nil {
		h.t.Fatalf("type: %v", err)
	}
}

// typeLine types s and Enter (CR, as a terminal sends it).
func (h *harness) typeLine(s string) { h.t.Helper(); h.typeRaw(s + "\r") }

// expect waits for want in the output after what was already consumed and
// returns the output up to it, consuming through it.
func (h *harness) expect(want string) string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		rest := h.out.String()[h.pos:]
		if i := strings.Index(rest, want); i >= 0 {
			h.pos += i + len(want)
			h.mu.Unlock()
			return rest[:i]
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %q; output since last match:\n%q", want, rest)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run types a command line and returns what it printed before the next
// prompt, without the echo of the line itself.
func (h *harness) run(prompt, line string) string {
	h.t.Helper()
	h.typeLine(line)
	out := h.expect(prompt)
	_, after, _ := strings.Cut(out, "\r\n") // the echoed line
	return after
}

func (h *harness) all() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

func (h *harness) login(user, pw string) {
	h.t.Helper()
	h.expect("login: ")
	h.typeLine(user)
	h.expect("Password: ")
	h.typeLine(pw)
}

// oneErrorLine checks out is exactly one "error: ..." line.
func oneErrorLine(t *testing.T, line, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") {
		t.Errorf("%q gave %q, want one error line", line, out)
	}
}

func TestConsoleFirstRunAndSession(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.db")
	h := startHarness(t, path, nil)
	h.expect(`created user "admin" with password `)
	pw := h.expect("\r\n")
	h.login("admin", pw)
	if echoed := h.expect("\r\n"); echoed != "" {
		t.Errorf("password echoed: %q", echoed)
	}
	h.expect("You must change your password now.")
	h.expect("New password: ")
	h.typeLine("short")
	h.expect("error: password: must be at least 8 characters")
	h.expect("New password: ")
	h.typeLine("admin-pass-2")
	h.expect("Retype new password: ")
	h.typeLine("admin-pass-2")
	h.expect("password of admin changed")
	const prompt = "admin@nvr> "
	h.expect(prompt)

	// Add a camera, password asked with echo off, tested through the system.
	h.typeLine("cameras add lobby rtsp://192.0.2.5:554/stream1 --user view --ask-password --max-age 30d")
	h.expect("Camera password: ")
	h.typeLine("cam-secret-1")
	out := h.expect(prompt)
	for _, want := range []string{"testing rtsp://192.0.2.5:554/stream1", "camera answers: H264", "camera lobby added"} {
		if !strings.Contains(out, want) {
			t.Errorf("cameras add output lacks %q: %q", want, out)
		}
	}
	out = h.run(prompt, "cameras list")
	if !strings.Contains(out, "lobby") || !strings.Contains(out, "recording") || !strings.Contains(out, "view:********") {
		t.Errorf("cameras list = %q", out)
	}
	out = h.run(prompt, "cameras list --json")
	if !strings.Contains(out, `"name": "lobby"`) || !strings.Contains(out, `"has_password": true`) {
		t.Errorf("cameras list --json = %q", out)
	}
	if out := h.run(prompt, "storage retention lobby 7d"); !strings.Contains(out, "retention of lobby set to 7d") {
		t.Errorf("retention = %q", out)
	}

	typeGarbage(t, h, prompt)
	typeEdits(t, h, prompt)
	typeConfirmations(t, h, prompt)

	// Ctrl-D logs out; the login prompt comes back.
	h.expect(prompt)
	h.typeRaw("\x04")
	h.expect("logout")
	h.expect("login: ")
	if strings.Contains(h.all(), "cam-secret-1") || strings.Contains(h.all(), "admin-pass-2") {
		t.Error("a password appeared on the terminal")
	}
	if os.Getenv("NVR_CONSOLE_TRANSCRIPT") != "" {
		t.Logf("transcript:\n%s", strings.ReplaceAll(h.all(), "\r", ""))
	}
	h.stop()

	h.sys.mu.Lock()
	if len(h.sys.formatted) != 1 || h.sys.reboots != 1 || h.sys.shutdowns != 0 || len(h.sys.tested) != 1 {
		t.Errorf("system calls: formatted %v reboots %d shutdowns %d tested %d", h.sys.formatted, h.sys.reboots, h.sys.shutdowns, len(h.sys.tested))
	}
	h.sys.mu.Unlock()

	// The configuration survives a reopen.
	s := openStore(t, path)
	defer s.Close()
	site, err := s.Site()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := site.Camera("lobby")
	if !ok || c.MaxAge != 7*24*time.Hour || c.Password.Reveal() != "cam-secret-1" || c.Username != "view" || len(site.Cameras) != 1 {
		t.Errorf("after reopen: %+v (%d cameras)", c, len(site.Cameras))
	}
	if _, err := s.Authenticate("admin", "admin-pass-2"); err != nil {
		t.Errorf("new admin password: %v", err)
	}
	audit, _ := s.Audit(0, 100)
	if len(audit) != 4 || audit[0].Actor != "console:admin" || audit[0].Kind != "retention.set" {
		t.Errorf("audit = %+v", audit)
	}
}

func TestConsoleBadPasswordDelay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.db")
	s := openStore(t, path)
	if _, err := s.Apply("test", config.AddUser{Name: "bob", Role: config.RoleOperator, Password: "bob-password"}); err == nil {
		t.Fatal("an operator-only site was accepted") // at least one admin must remain
	}
	for _, m := range []config.Mutation{
		config.AddUser{Name: "root", Role: config.RoleAdmin, Password: "root-password"},
		config.AddUser{Name: "bob", Role: config.RoleOperator, Password: "bob-password"},
	} {
		if _, err := s.Apply("test", m); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	h := startHarness(t, path, nil)
	for _, pw := range []string{"wrong", "", "bob-passwordX"} {
		h.login("bob", pw)
		h.expect("Login incorrect")
	}
	h.login("nobody", "bob-password")
	h.expect("Login incorrect")
	h.login("bob", "bob-password")
	h.expect("Logged in as bob (operator)")
	const prompt = "bob@nvr> "
	h.expect(prompt)
	if out := h.run(prompt, "users list"); !strings.Contains(out, "permission denied") {
		t.Errorf("operator ran users list: %q", out)
	}
	h.typeRaw("logout\r")
	h.login("bob", "nope")
	h.expect("Login incorrect")
	got := h.sleep.got()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, time.Second}
	if len(got) != len(want) {
		t.Fatalf("delays = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delays = %v, want %v", got, want)
			break
		}
	}
	if strings.Contains(h.all(), "bob-password") {
		t.Error("password echoed")
	}
}

func TestConsoleIdleLogout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.db")
	s := openStore(t, path)
	if _, err := s.Apply("test", config.AddUser{Name: "root", Role: config.RoleAdmin, Password: "root-password"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	h := startHarness(t, path, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	h.login("root", "root-password")
	h.expect("root@nvr> ")
	start := time.Now()
	h.expect("idle for 300ms: logged out")
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("logged out after %v", d)
	}
	h.expect("login: ")
}

func TestNewValidates(t *testing.T) {
	sys := newFakeSystem()
	path := filepath.Join(t.TempDir(), "c.db")
	store := openStore(t, path)
	defer store.Close()
	var rw bytes.Buffer
	for _, o := range []Options{
		{Config: store, System: sys},
		{Terminal: &rw, System: sys},
		{Terminal: &rw, Config: store},
		{Terminal: &rw, Config: store, System: sys, LoginDelay: time.Minute, MaxLoginDelay: time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestConsoleConfigExportImport clones a site through two serial consoles:
// export printed on one, pasted into the other.
func TestConsoleConfigExportImport(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	dst := filepath.Join(t.TempDir(), "dst.db")
	for _, p := range []string{src, dst} {
		s := openStore(t, p)
		if _, err := s.Apply("test", config.AddUser{Name: "root", Role: config.RoleAdmin, Password: "root-password"}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	const prompt = "root@nvr> "
	h := startHarness(t, src, nil)
	h.login("root", "root-password")
	h.expect(prompt)
	h.run(prompt, "cameras add lobby rtsp://192.0.2.5/s --user u --password cam-pw-1 --max-age 3d")
	h.typeLine("users add op operator")
	h.expect("Password: ")
	h.typeLine("operator-pw")
	h.expect("Retype password: ")
	h.typeLine("operator-pw")
	h.expect(prompt)
	h.typeLine("config export")
	h.expect(exportBegin + "\r\n")
	file := h.expect(exportEnd)
	h.expect(prompt)
	h.stop()
	if !strings.Contains(file, "cam-pw-1") || !strings.Contains(file, "\r\nsha256 ") {
		t.Fatalf("export = %q", file)
	}

	h2 := startHarness(t, dst, nil)
	h2.login("root", "root-password")
	h2.expect(prompt)
	// A damaged paste is refused and changes nothing.
	h2.typeLine("config import")
	h2.expect("ends at its \"sha256\" line.\r\n")
	h2.typeRaw(strings.ReplaceAll(strings.Replace(file, "lobby", "lobbx", 1), "\r\n", "\r"))
	out := h2.expect(prompt)
	oneErrorLine(t, "config import (damaged)", out)
	if !strings.Contains(out, "checksum mismatch") {
		t.Errorf("damaged import: %q", out)
	}
	h2.typeLine("config import")
	h2.expect("ends at its \"sha256\" line.\r\n")
	h2.typeRaw(exportBegin + "\r" + strings.ReplaceAll(file, "\r\n", "\r"))
	if out := h2.expect(prompt); !strings.Contains(out, "1 cameras, 2 users") {
		t.Errorf("import: %q", out)
	}
	h2.stop()
	s := openStore(t, dst)
	defer s.Close()
	site, _ := s.Site()
	if c, ok := site.Camera("lobby"); !ok || c.Password.Reveal() != "cam-pw-1" || c.MaxAge != 3*24*time.Hour {
		t.Errorf("imported camera %+v", c)
	}
	if _, err := s.Authenticate("op", "operator-pw"); err != nil {
		t.Errorf("imported user: %v", err)
	}
}

// TestStdioStops runs the console over NewStdio (as the demo does on
// stdin/stdout, here a pty) and checks Run returns on cancel with no key
// pressed, and the input is blocking again after Close.
func TestStdioStops(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	path := filepath.Join(t.TempDir(), "c.db")
	store := openStore(t, path)
	defer store.Close()
	stdio, err := NewStdio(tty, tty)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Terminal: stdio, Config: store, System: newFakeSystem()})
	if err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(io.Discard, ptmx) // drains output until the tty closes
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run over Stdio did not stop")
	}
	if err := stdio.Close(); err != nil {
		t.Fatal(err)
	}
	rc, _ := tty.SyscallConn()
	var flags int
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK != 0 {
		t.Error("input left non-blocking")
	}
	tty.Close()
	<-copied
	checkGoroutines(t, goroutines)
}

// typeGarbage types garbled lines: one clear error line each, nothing
// changed.
func typeGarbage(t *testing.T, h *harness, prompt string) {
	for _, line := range []string{
		"frobnicate now",
		`cameras add "front door`,
		"cameras \x01list",
		"cameras list \xff\xfe",
		strings.Repeat("x", 10*1024),
		"cameras add Bad rtsp://h/",
		"cameras remove",
		"cameras list --bogus",
		"cameras explode",
	} {
		oneErrorLine(t, line[:min(len(line), 40)], h.run(prompt, line))
	}

}

// typeEdits exercises the line editor's keys and Ctrl-C.
func typeEdits(t *testing.T, h *harness, prompt string) {
	// Editing: backspace, Ctrl-U, Ctrl-W, and Ctrl-C cancelling a line.
	if out := h.run(prompt, "cameraz\x7fs lisx\bt"); !strings.Contains(out, "lobby") {
		t.Errorf("backspace editing: %q", out)
	}
	h.typeRaw("cameras remove lob\x03")
	h.expect("^C\r\n" + prompt)
	h.typeRaw("garbage\x15help cam\x17cameras\r")
	if out := h.expect(prompt); !strings.Contains(out, "cameras list") {
		t.Errorf("Ctrl-U/Ctrl-W editing: %q", out)
	}
	// A command cut off half way, at its password prompt.
	h.typeLine("cameras add door rtsp://192.0.2.7/ --ask-password")
	h.expect("Camera password: ")
	h.typeRaw("half\x03")
	if out := h.expect(prompt); !strings.Contains(out, "cancelled") {
		t.Errorf("Ctrl-C at a prompt: %q", out)
	}
	// History: up twice recalls the last-but-one line.
	h.run(prompt, "show status")
	h.run(prompt, "time show")
	h.typeRaw("\x1b[A\x1b[A\r")
	if out := h.expect(prompt); !strings.Contains(out, "retention held: 13d 4h") || !strings.Contains(out, "psu2") {
		t.Errorf("history recall of show status: %q", out)
	}

}

// typeConfirmations answers storage format, shutdown and reboot prompts.
func typeConfirmations(t *testing.T, h *harness, prompt string) {
	// Confirmations.
	h.typeLine("storage format")
	h.expect("Type the volume name (vol0) to confirm: ")
	h.typeLine("vol1")
	if out := h.expect(prompt); !strings.Contains(out, "not confirmed") {
		t.Errorf("format with a wrong name: %q", out)
	}
	h.typeLine("storage format")
	h.expect("to confirm: ")
	h.typeLine("vol0")
	h.expect("volume vol0 formatted")
	h.typeLine("shutdown")
	h.expect(`Type "shutdown" to confirm: `)
	h.typeLine("no")
	h.expect(prompt)
	h.typeLine("reboot")
	h.expect(`Type "reboot" to confirm: `)
	h.typeLine("reboot")
	h.expect("reboot requested")
}
