package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// memTerm is a terminal that only records output; these tests run
// commands that never read.
type memTerm struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (m *memTerm) Read([]byte) (int, error) { return 0, errors.New("memTerm: no input") }

func (m *memTerm) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(b)
}

func (m *memTerm) take() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.out.String()
	m.out.Reset()
	return strings.ReplaceAll(s, "\r\n", "\n")
}

type cmdEnv struct {
	store *config.Store
	sys   *fakeSystem
	term  *memTerm
	c     *Console
}

func newCmdEnv(t *testing.T) *cmdEnv {
	t.Helper()
	store := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() {
		if err := store.Check(); err != nil {
			t.Error(err)
		}
		store.Close()
	})
	for _, m := range []config.Mutation{
		config.AddUser{Name: "root", Role: config.RoleAdmin, Password: "root-password"},
		config.AddUser{Name: "op", Role: config.RoleOperator, Password: "op-password"},
		config.AddUser{Name: "eve", Role: config.RoleViewer, Password: "eve-password"},
		config.AddCamera{Camera: config.Camera{Name: "lobby", URL: "rtsp://192.0.2.5/s", Enabled: true}},
	} {
		if _, err := store.Apply("test", m); err != nil {
			t.Fatal(err)
		}
	}
	e := &cmdEnv{store: store, sys: newFakeSystem(), term: &memTerm{}}
	c, err := New(Options{Terminal: e.term, Config: store, System: e.sys})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

// exec runs line as user and returns the output.
func (e *cmdEnv) exec(t *testing.T, user, line string) string {
	t.Helper()
	site, _ := e.store.Site()
	u, ok := site.User(user)
	if !ok {
		t.Fatalf("no user %s", user)
	}
	s := &session{c: e.c, user: u, actor: "console:" + user}
	if _, err := s.execLine(context.Background(), line); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return e.term.take()
}

func TestCommandsJSON(t *testing.T) {
	e := newCmdEnv(t)
	e.exec(t, "root", "tokens create vms viewer")
	for _, line := range []string{
		"show status --json", "show board --json", "cameras list --json", "storage status --json", "storage retention --json",
		"network show --json", "time show --json", "users list --json", "tokens list --json",
		"events --json", "events --json --audit --limit 2", "firmware status --json",
	} {
		t.Run(line, func(t *testing.T) {
			out := e.exec(t, "root", line)
			if !json.Valid([]byte(out)) {
				t.Errorf("not JSON: %q", out)
			}
			if strings.Contains(out, "nvrt_") || strings.Contains(out, "argon2id") {
				t.Errorf("secret in output: %q", out)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		user, line string
		want       string // substring of the output
		err        bool   // output is exactly one error line
		check      func(t *testing.T, e *cmdEnv)
	}{
		{user: "eve", line: "help", want: "cameras   list, add"},
		{user: "eve", line: "help storage retention", want: "usage: storage retention"},
		{user: "eve", line: "help nope", err: true},
		{user: "eve", line: "cameras", err: true, want: "needs a subcommand"},
		{user: "eve", line: "cameras list", want: "lobby"},
		{user: "eve", line: "cameras add x rtsp://192.0.2.9/", err: true, want: "permission denied"},
		{user: "eve", line: "storage retention lobby 3d", err: true, want: "permission denied"},
		{user: "eve", line: "users list", err: true, want: "permission denied"},
		{user: "eve", line: "reboot", err: true, want: "permission denied"},
		{user: "op", line: "storage retention --default 30d", want: "default retention set to 30d",
			check: func(t *testing.T, e *cmdEnv) {
				wantSite(t, e, func(s config.Site) bool { return s.Storage.DefaultMaxAge == 30*24*time.Hour })
			}},
		{user: "op", line: "storage retention lobby forever", err: true, want: "not a duration"},
		{user: "op", line: "storage retention lobby 1s", err: true, want: "max_age"},
		{user: "op", line: "storage retention", want: "lobby: default"},
		{user: "op", line: "cameras add yard rtsp://192.0.2.6/s --transport udp --password x", err: true, want: "needs a user name"},
		{user: "op", line: "cameras add yard rtsp://192.0.2.6/s --transport udp --user u --password pw --max-age 2w", want: "camera yard added",
			check: func(t *testing.T, e *cmdEnv) {
				wantSite(t, e, func(s config.Site) bool {
					c, ok := s.Camera("yard")
					return ok && c.Transport == config.TransportUDP && c.MaxAge == 14*24*time.Hour && c.Password == "pw"
				})
			}},
		{user: "op", line: "cameras add lobby rtsp://192.0.2.6/s", err: true, want: "already exists"},
		{user: "op", line: "cameras edit lobby --disable", want: "camera lobby changed",
			check: func(t *testing.T, e *cmdEnv) {
				wantSite(t, e, func(s config.Site) bool { c, _ := s.Camera("lobby"); return !c.Enabled })
				if len(e.sys.tested) != 0 {
					t.Error("disabling a camera tested it")
				}
			}},
		{user: "op", line: "cameras edit lobby --url rtsp://192.0.2.50/s", want: "camera lobby changed",
			check: func(t *testing.T, e *cmdEnv) {
				if len(e.sys.tested) != 1 {
					t.Errorf("URL change tested %d times", len(e.sys.tested))
				}
			}},
		{user: "op", line: "cameras edit ghost --disable", err: true, want: "no camera"},
		{user: "op", line: "cameras test rtsp://192.0.2.77/x", want: "camera answers"},
		{user: "op", line: "cameras remove lobby", want: "removed",
			check: func(t *testing.T, e *cmdEnv) { wantSite(t, e, func(s config.Site) bool { return len(s.Cameras) == 0 }) }},
		{user: "root", line: "network set eth0 static 192.0.2.10/24 --gateway 192.0.2.1", want: "applied and saved",
			check: func(t *testing.T, e *cmdEnv) {
				wantSite(t, e, func(s config.Site) bool {
					return len(s.Network.Interfaces) == 1 && s.Network.Interfaces[0].Gateway4 == "192.0.2.1"
				})
				if len(e.sys.networks) != 1 {
					t.Errorf("ApplyNetwork called %d times", len(e.sys.networks))
				}
			}},
		{user: "root", line: "network set eth0 static 192.0.2.10", err: true, want: "CIDR",
			check: func(t *testing.T, e *cmdEnv) {
				if len(e.sys.networks) != 0 {
					t.Error("an invalid network was applied")
				}
			}},
		{user: "root", line: "network set eth0.5 dhcp --vlan 5 --parent eth9", err: true, want: "parent"},
		{user: "root", line: "network set dns 192.0.2.53", want: "applied and saved"},
		{user: "root", line: "network set hostname nvr-7", want: "applied and saved"},
		{user: "root", line: "network remove eth3", err: true, want: "no interface"},
		{user: "root", line: "time set --timezone Europe/Paris --ntp pool.ntp.org,192.0.2.123", want: "time settings saved",
			check: func(t *testing.T, e *cmdEnv) {
				wantSite(t, e, func(s config.Site) bool { return s.Time.Timezone == "Europe/Paris" && len(s.Time.NTPServers) == 2 })
			}},
		{user: "root", line: "time set --timezone Mars/Base", err: true, want: "unknown zone"},
		{user: "root", line: `time set --clock "2026-11-25 10:00:00"`, want: "clock set to 2026-11-25 10:00:00 UTC",
			check: func(t *testing.T, e *cmdEnv) {
				if len(e.sys.clocks) != 1 || !e.sys.clocks[0].Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)) {
					t.Errorf("clocks = %v", e.sys.clocks)
				}
			}},
		{user: "root", line: "time set --clock yesterday", err: true, want: "YYYY-MM-DD"},
		{user: "root", line: "users list", want: "root"},
		{user: "root", line: "users remove root", err: true, want: "yourself"},
		{user: "root", line: "users remove op", want: "user op removed"},
		{user: "root", line: "users add Bad viewer", err: true, want: "name"},
		{user: "root", line: "users add bob superuser", err: true, want: "role must be"},
		{user: "root", line: "tokens create vms viewer", want: "nvrt_"},
		{user: "root", line: "tokens revoke nope", err: true, want: "not found"},
		{user: "root", line: "events --audit", want: "console:root"},
		{user: "root", line: "events --system", want: "psu2"},
		{user: "root", line: "events --limit 0", err: true, want: "--limit"},
		{user: "root", line: "firmware status", want: "running: 1.2.3"},
		{user: "root", line: "storage status", want: "6.0 TiB used of 8.0 TiB (75%)"},
		{user: "root", line: "show status extra", err: true, want: "no arguments"},
		{user: "root", line: "show board", want: "FAULT VIN_UV_FAULT"},
		{user: "root", line: "show board", want: "EMPTY, fault LED on"},
		{user: "root", line: "show board", want: "raid  md0      degraded, sync 42% (recording volume)"},
		{user: "root", line: "show board", want: "last reset: by the hardware watchdog"},
		{user: "root", line: "show board", want: "drive sdb        in_sync          read errors 7, I/O errors 2\n"},
		{user: "root", line: "show board", want: "drive nvme0n1    faulty           read errors 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.line, func(t *testing.T) {
			e := newCmdEnv(t)
			if strings.HasPrefix(tt.line, "network remove") || strings.HasPrefix(tt.line, "events --audit") {
				e.exec(t, "root", "network set eth0 dhcp")
			}
			out := e.exec(t, tt.user, tt.line)
			if tt.err {
				oneErrorLine(t, tt.line, strings.ReplaceAll(out, "\n", "\r\n"))
			} else if strings.HasPrefix(out, "error:") {
				t.Errorf("unexpected error: %q", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q lacks %q", out, tt.want)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

func TestCameraTestFailureSavesNothing(t *testing.T) {
	e := newCmdEnv(t)
	e.sys.testErr = errors.New("connection refused")
	out := e.exec(t, "op", "cameras add yard rtsp://192.0.2.6/s")
	if !strings.Contains(out, "camera test failed: connection refused") {
		t.Errorf("output %q", out)
	}
	wantSite(t, e, func(s config.Site) bool { _, ok := s.Camera("yard"); return !ok })
	if out := e.exec(t, "op", "cameras add yard rtsp://192.0.2.6/s --no-test"); !strings.Contains(out, "added") {
		t.Errorf("--no-test: %q", out)
	}
}

func TestNetworkApplyFailureSavesNothing(t *testing.T) {
	e := newCmdEnv(t)
	e.sys.applyErr = errors.New("link eth0 not found")
	out := e.exec(t, "root", "network set eth0 dhcp")
	oneErrorLine(t, "network set", strings.ReplaceAll(out, "\n", "\r\n"))
	wantSite(t, e, func(s config.Site) bool { return len(s.Network.Interfaces) == 0 })
}

func wantSite(t *testing.T, e *cmdEnv, ok func(config.Site) bool) {
	t.Helper()
	site, err := e.store.Site()
	if err != nil {
		t.Fatal(err)
	}
	if !ok(site) {
		t.Errorf("site not as expected: %+v", site)
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"off": 0, "0": 0, "30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v", in, got, err)
		}
		if got, _ := parseAge(formatAge(want)); got != want {
			t.Errorf("formatAge(%v) does not parse back", want)
		}
	}
	for _, bad := range []string{"", "d", "-3d", "forever", "1x"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q) accepted", bad)
		}
	}
}

func TestRemovedUserLoggedOut(t *testing.T) {
	e := newCmdEnv(t)
	site, _ := e.store.Site()
	u, _ := site.User("op")
	s := &session{c: e.c, user: u, actor: "console:op"}
	if _, err := e.store.Apply("test", config.RemoveUser{Name: "op"}); err != nil {
		t.Fatal(err)
	}
	done, err := s.execLine(context.Background(), "cameras list")
	if !done || err != nil || !strings.Contains(e.term.take(), "no longer exists") {
		t.Errorf("execLine after removal: done %v err %v", done, err)
	}
}
