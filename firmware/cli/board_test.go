package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBoardCommands(t *testing.T) {
	sys := t.TempDir()
	wd := filepath.Join(sys, "class/watchdog/watchdog0")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"identity": "i6300ESB timer", "state": "active", "timeout": "30", "timeleft": "28", "bootstatus": "32", "nowayout": "0"} {
		if err := os.WriteFile(filepath.Join(wd, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.board")
	if err := os.WriteFile(bad, []byte("model x\npsu P bus=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"profiles", []string{"board", "profiles"}, 0, []string{"generic-x86-2u\n", "qemu\n"}, ""},
		{"show built-in", []string{"board", "show", "--profile", "qemu"}, 0, []string{"model qemu\n", "psu PSU1 adapter=SMBus_stub_driver addr=0x58\n", "raid md0 role=recording\n", "watchdog /dev/watchdog0 timeout=30s\n"}, ""},
		{"show missing profile", []string{"board", "show", "--profile", "nope"}, 1, nil, `board profile "nope" is not built in`},
		{"show bad file", []string{"board", "show", "--profile", bad}, 1, nil, "bad.board:2: psu P: missing addr="},
		{"show without profile", []string{"board", "show"}, 2, nil, "needs --profile"},
		{"json without live", []string{"board", "show", "--profile", "qemu", "--json"}, 2, nil, "--json needs --live"},
		{"live json", []string{"board", "show", "--profile", "qemu", "--live", "--json", "--for", "200ms"}, 0, []string{`"Arrays": [`, `"Name": "md0"`, `"Recording": true`}, ""},
		{"watchdog", []string{"board", "watchdog", "--sysfs", sys}, 0, []string{"watchdog0", "i6300ESB timer", "active", "30s", "28s", "WATCHDOG RESET"}, ""},
		{"no watchdog", []string{"board", "watchdog", "--sysfs", t.TempDir()}, 1, nil, "no watchdog under"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errs)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(errs, tc.stderr) {
				t.Errorf("stderr %q lacks %q", errs, tc.stderr)
			}
		})
	}
}

// TestBoardShowLive binds the qemu profile on this machine: without its
// devices every part is reported unbound, and the command still prints the
// array table and exits 0.
func TestBoardShowLive(t *testing.T) {
	code, out, errs := run(t, "board", "show", "--profile", "qemu", "--live", "--for", "300ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "md0 (recording)") {
		t.Errorf("stdout lacks the recording array:\n%s", out)
	}
	if _, err := os.Stat("/sys/module/i2c_stub"); err != nil && !strings.Contains(errs, "psu PSU1") {
		t.Errorf("stderr does not name the unbound PSU:\n%s", errs)
	}
}
