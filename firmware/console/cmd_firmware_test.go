package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fakeInstaller is a System that can install firmware: it replays steps
// to the progress callback and returns err, recording each request.
type fakeInstaller struct {
	*fakeSystem
	steps []FirmwareProgress
	err   error
	got   []FirmwareInstall
}

func (f *fakeInstaller) InstallFirmware(_ context.Context, req FirmwareInstall, progress func(FirmwareProgress)) (FirmwareInstalled, error) {
	f.got = append(f.got, req)
	for _, p := range f.steps {
		progress(p)
	}
	if f.err != nil {
		return FirmwareInstalled{}, f.err
	}
	return FirmwareInstalled{Version: "1.3.0", Slot: "b", Fallback: "a"}, nil
}

// withSystem makes e's console use sys.
func (e *cmdEnv) withSystem(t *testing.T, sys System) {
	t.Helper()
	c, err := New(Options{Terminal: e.term, Config: e.store, System: sys})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
}

// steps returns progress reports of n equal increments of a total-byte step.
func steps(step, slot string, total int64, n int) []FirmwareProgress {
	var out []FirmwareProgress
	for i := 0; i <= n; i++ {
		out = append(out, FirmwareProgress{Step: step, Slot: slot, Done: total * int64(i) / int64(n), Total: total})
	}
	return out
}

func TestFirmwareInstall(t *testing.T) {
	tenths := func(prefix string) string {
		var b strings.Builder
		for i := 0; i <= 100; i += 10 {
			fmt.Fprintf(&b, "%s: %d%%\n", prefix, i)
		}
		return b.String()
	}
	ok := append(append(append([]FirmwareProgress(nil),
		FirmwareProgress{Step: StepDownload, Done: 0}, FirmwareProgress{Step: StepDownload, Done: 9 << 20}),
		steps(StepVerify, "", 20<<20, 40)...), steps(StepWrite, "b", 20<<20, 7)...)
	tests := []struct {
		name     string
		user     string
		line     string
		steps    []FirmwareProgress
		err      error
		want     []string // substrings of the output, in order
		wantNot  []string
		requests int
	}{
		{name: "installed with progress", user: "root", line: "firmware install http://10.0.2.2:8000/fw.nvrfw", steps: ok,
			want: []string{"downloading: 0.0 MiB\n", "downloading: 9.0 MiB\n", tenths("verifying"), "writing slot b: 10%\n",
				"writing slot b: 100%\n", "firmware 1.3.0 installed in slot b, armed for one trial boot: reboot to try it.\n",
				"comes back on slot a.\n"},
			wantNot: []string{"error"}, requests: 1},
		{name: "refused: one error line", user: "root", line: "firmware install /update/bundle.nvrfw",
			steps: steps(StepVerify, "", 1000, 4), err: errors.New("/update/bundle.nvrfw refused: bundle: bad signature"),
			want:    []string{"verifying: 100%\n", "error: firmware install: /update/bundle.nvrfw refused: bundle: bad signature\n"},
			wantNot: []string{"installed", "writing"}, requests: 1},
		{name: "multi-line error kept on one line", user: "root", line: "firmware install /x",
			err: errors.New("refused:\nbad\tthings"), want: []string{"error: firmware install: refused: bad things\n"}, requests: 1},
		{name: "operator may not install", user: "op", line: "firmware install /x", want: []string{"error: permission denied"}},
		{name: "viewer may not install", user: "eve", line: "firmware install /x", want: []string{"error: permission denied"}},
		{name: "source required", user: "root", line: "firmware install", want: []string{"error: one SOURCE expected (usage: firmware install [--allow-downgrade] SOURCE)"}},
		{name: "one source only", user: "root", line: "firmware install a b", want: []string{"error: one SOURCE expected"}},
		{name: "unknown flag", user: "root", line: "firmware install --force /x", want: []string{"error: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCmdEnv(t)
			inst := &fakeInstaller{fakeSystem: e.sys, steps: tt.steps, err: tt.err}
			e.withSystem(t, inst)
			out := e.exec(t, tt.user, tt.line)
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			if strings.Count(out, "error: ") > 1 {
				t.Errorf("more than one error line:\n%s", out)
			}
			if len(inst.got) != tt.requests {
				t.Errorf("%d install requests, want %d", len(inst.got), tt.requests)
			}
		})
	}
}

func TestFirmwareInstallRequest(t *testing.T) {
	e := newCmdEnv(t)
	inst := &fakeInstaller{fakeSystem: e.sys}
	e.withSystem(t, inst)
	e.exec(t, "root", "firmware install --allow-downgrade '/update/old fw.nvrfw'")
	e.exec(t, "root", "firmware install /update/new.nvrfw")
	want := []FirmwareInstall{{Source: "/update/old fw.nvrfw", AllowDowngrade: true}, {Source: "/update/new.nvrfw"}}
	if len(inst.got) != len(want) || inst.got[0] != want[0] || inst.got[1] != want[1] {
		t.Errorf("requests %+v, want %+v", inst.got, want)
	}
}

func TestFirmwareInstallUnavailable(t *testing.T) {
	e := newCmdEnv(t) // fakeSystem has no InstallFirmware
	out := e.exec(t, "root", "firmware install /x")
	if out != "error: "+errNoInstaller.Error()+"\n" {
		t.Errorf("output %q", out)
	}
}
