package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/firmware/slots"
)

// TestGrubScriptMatchesDecide checks that grub.cfg uses the environment
// keys, file names and command-line key firmware/slots uses.
func TestGrubScriptMatchesDecide(t *testing.T) {
	cfg, err := os.ReadFile("grub/grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	for _, want := range []string{
		"load_env --file ${nvr_env} " + slots.KeyDefault + " " + slots.KeyTrial,
		"save_env --file ${nvr_env} " + slots.KeyTrial,
		"set nvr_env=/" + slots.EnvFile,
		"/${nvr_boot}/" + slots.KernelFile,
		"/${nvr_boot}/" + slots.InitramfsFile,
		slots.CmdlineKey + "=${nvr_boot}",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	// The trial flag must be cleared and saved before the menu entry boots.
	if strings.Index(s, "save_env") > strings.Index(s, "menuentry") {
		t.Error("grub.cfg saves the environment after the menu entry")
	}
}

// grubTool returns the path of a GRUB utility (package grub-common); it is
// required under CI=true.
func grubTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (apt-get install grub-common): %v", name, err)
		}
		t.Skipf("%s is missing (apt-get install grub-common)", name)
	}
	return p
}

// TestGrubScriptSyntax runs GRUB's own parser over grub.cfg.
func TestGrubScriptSyntax(t *testing.T) {
	out, err := exec.Command(grubTool(t, "grub-script-check"), "grub/grub.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("grub-script-check: %v\n%s", err, out)
	}
}

// TestGrubEnvCompatible checks that GRUB's tools and firmware/slots read
// each other's environment blocks (GRUB adds a comment line that ParseEnv
// skips and Marshal does not write).
func TestGrubEnvCompatible(t *testing.T) {
	editenv := grubTool(t, "grub-editenv")
	file := filepath.Join(t.TempDir(), "grubenv")
	for _, args := range [][]string{{"create"}, {"set", "nvr_default=a", "nvr_trial=b"}} {
		if out, err := exec.Command(editenv, append([]string{file}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("grub-editenv %v: %v\n%s", args, err, out)
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env, err := slots.ParseEnv(raw)
	if err != nil {
		t.Fatalf("ParseEnv of grub-editenv's block: %v", err)
	}
	slot, next := slots.Decide(env)
	if slot != slots.B {
		t.Fatalf("Decide chose %s", slot)
	}
	b, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(editenv, file, "list").CombinedOutput()
	if err != nil || string(out) != "nvr_default=a\nnvr_trial=\n" {
		t.Fatalf("grub-editenv list of our block: %q, %v", out, err)
	}
}
