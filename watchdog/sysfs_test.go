package watchdog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func i6300esb() fstest.MapFS {
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	return fstest.MapFS{
		"class/watchdog/watchdog0/identity":   f("i6300ESB timer"),
		"class/watchdog/watchdog0/state":      f("active"),
		"class/watchdog/watchdog0/nowayout":   f("0"),
		"class/watchdog/watchdog0/status":     f("0x8000"),
		"class/watchdog/watchdog0/bootstatus": f("32"),
		"class/watchdog/watchdog0/timeout":    f("30"),
		"class/watchdog/watchdog0/timeleft":   f("27"),
	}
}

func TestReadSysfs(t *testing.T) {
	sys := i6300esb()
	names, err := ListSysfs(sys)
	if err != nil || len(names) != 1 || names[0] != "watchdog0" {
		t.Fatalf("ListSysfs = %v, %v", names, err)
	}
	s, err := ReadSysfs(sys, "watchdog0")
	if err != nil {
		t.Fatal(err)
	}
	want := SysfsStatus{Name: "watchdog0", Identity: "i6300ESB timer", Active: true, Status: FlagKeepAlivePing,
		BootStatus: FlagCardReset, Timeout: 30 * time.Second, TimeLeft: 27 * time.Second}
	if s != want || !s.WatchdogReset() {
		t.Fatalf("ReadSysfs = %+v\nwant %+v", s, want)
	}
	if names, err := ListSysfs(fstest.MapFS{}); err != nil || names != nil {
		t.Errorf("no watchdogs: %v, %v", names, err)
	}
	for _, tc := range []struct{ file, content, want string }{
		{"timeout", "thirty", `timeout: "thirty" is not a number`},
		{"state", "running", "neither active nor inactive"},
		{"identity", strings.Repeat("x", 300), "too long"},
	} {
		sys := i6300esb()
		sys["class/watchdog/watchdog0/"+tc.file] = &fstest.MapFile{Data: []byte(tc.content)}
		if _, err := ReadSysfs(sys, "watchdog0"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want %q", tc.file, tc.content, err, tc.want)
		}
	}
	if _, err := ReadSysfs(sys, "../x"); err == nil {
		t.Error("accepted ../x")
	}
	if _, err := ReadSysfs(sys, "watchdog1"); err == nil {
		t.Error("read a missing watchdog")
	}
}

func TestRecordBoot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bootcount")
	for i, tc := range []struct {
		reset bool
		want  BootCounts
	}{
		{false, BootCounts{1, 0}},
		{true, BootCounts{2, 1}},
		{false, BootCounts{3, 1}},
	} {
		got, err := RecordBoot(path, BootReason{WatchdogReset: tc.reset})
		if err != nil || got != tc.want {
			t.Fatalf("boot %d: %+v, %v; want %+v", i, got, err, tc.want)
		}
	}
	if err := os.WriteFile(path, []byte("boots 1\nwatchdog_resets 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RecordBoot(path, BootReason{}); err == nil || !strings.Contains(err.Error(), "only 1 boots") {
		t.Fatalf("corrupt counts: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func FuzzParseBootCounts(f *testing.F) {
	f.Add([]byte("boots 42\nwatchdog_resets 3\n"))
	f.Add([]byte("boots 1\nboots 2\n"))
	f.Add([]byte("watchdog_resets 18446744073709551615\nboots 18446744073709551615"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseBootCounts(b)
		if err != nil {
			return
		}
		if c.WatchdogResets > c.Boots {
			t.Fatalf("accepted %+v", c)
		}
		again, err := ParseBootCounts(c.Format())
		if err != nil || again != c {
			t.Fatalf("round trip %+v -> %+v, %v", c, again, err)
		}
	})
}

func FuzzReadSysfs(f *testing.F) {
	f.Add("active", "30", "0x8000", "32", "1")
	f.Add("inactive", "", "0", "0", "0")
	f.Add("running", "-1", "0xffffffffff", "x", "")
	f.Fuzz(func(t *testing.T, state, timeout, status, bootstatus, nowayout string) {
		sys := i6300esb()
		for k, v := range map[string]string{"state": state, "timeout": timeout, "status": status, "bootstatus": bootstatus, "nowayout": nowayout} {
			sys["class/watchdog/watchdog0/"+k] = &fstest.MapFile{Data: []byte(v)}
		}
		s, err := ReadSysfs(sys, "watchdog0")
		if err != nil {
			return
		}
		if s.Timeout < 0 || s.TimeLeft < 0 || s.Timeout%time.Second != 0 {
			t.Fatalf("accepted %+v", s)
		}
	})
}
