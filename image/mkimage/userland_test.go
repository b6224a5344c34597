package mkimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyFileT copies src to dst, creating dst's directory.
func copyFileT(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestProgramFiles lays out a Debian-like root from the host's sh and its
// libraries (each library behind a relative link, the loader behind an
// absolute one, as in libc6) and checks that programFiles finds the
// program, every library and the loader, and refuses a missing library.
func TestProgramFiles(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	if sh, err = filepath.EvalSymlinks(sh); err != nil {
		t.Fatal(err)
	}
	needed, interp, err := elfNeeds(sh)
	if err != nil {
		t.Fatal(err)
	}
	if len(needed) == 0 || interp == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the host's %s is not dynamically linked (needs %v, interpreter %q)", sh, needed, interp)
		}
		t.Skipf("the host's %s is not dynamically linked", sh)
	}
	root := t.TempDir()
	copyFileT(t, sh, filepath.Join(root, "sbin", "prog"))
	const libDir = "lib/x86_64-linux-gnu"
	hostLib := func(name string) string {
		for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64"} {
			if p, err := filepath.EvalSymlinks(filepath.Join(d, name)); err == nil {
				return p
			}
		}
		t.Fatalf("host library %s not found", name)
		return ""
	}
	for _, lib := range needed {
		copyFileT(t, hostLib(lib), filepath.Join(root, libDir, lib+".real"))
		if err := os.Symlink(lib+".real", filepath.Join(root, libDir, lib)); err != nil {
			t.Fatal(err)
		}
	}
	loader := filepath.Base(interp)
	copyFileT(t, hostLib(loader), filepath.Join(root, libDir, loader))
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(interp)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/"+libDir+"/"+loader, filepath.Join(root, interp)); err != nil {
		t.Fatal(err)
	}

	specs, err := programFiles(root, []string{"sbin/prog"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range specs {
		host, archive, _ := strings.Cut(s, ":")
		got[archive] = host
	}
	want := map[string]string{
		"sbin/prog":                     filepath.Join(root, "sbin", "prog"),
		strings.TrimPrefix(interp, "/"): filepath.Join(root, libDir, loader),
		libDir + "/" + needed[0]:        filepath.Join(root, libDir, needed[0]+".real"),
	}
	for archive, host := range want {
		if got[archive] != host {
			t.Errorf("%s <- %q, want %q (all: %v)", archive, got[archive], host, specs)
		}
	}
	if len(got) < len(needed)+2 {
		t.Errorf("%d files, want at least the program, %d libraries and the loader: %v", len(got), len(needed), specs)
	}

	if err := os.Remove(filepath.Join(root, libDir, needed[0]+".real")); err != nil {
		t.Fatal(err)
	}
	if _, err := programFiles(root, []string{"sbin/prog"}); err == nil || !strings.Contains(err.Error(), needed[0]) {
		t.Errorf("a missing %s: err = %v", needed[0], err)
	}
	if _, err := programFiles(root, []string{"sbin/nosuch"}); err == nil {
		t.Error("a missing program was accepted")
	}
}
