package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
)

func writeTestFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFirmwareCommands drives keygen, pack, verify, install, status and
// confirm through Main, as an operator would.
func TestFirmwareCommands(t *testing.T) {
	dir := t.TempDir()
	key, other := filepath.Join(dir, "k"), filepath.Join(dir, "other")
	for _, k := range []string{key, other} {
		if code, _, errOut := run(t, "firmware", "keygen", "--out", k); code != 0 {
			t.Fatalf("keygen: %d %s", code, errOut)
		}
	}
	if code, _, _ := run(t, "firmware", "keygen", "--out", key); code != 1 {
		t.Fatalf("keygen over an existing key: exit %d", code)
	}
	kernel := writeTestFile(t, filepath.Join(dir, "vmlinuz"), bytes.Repeat([]byte("k"), 5000))
	initrd := writeTestFile(t, filepath.Join(dir, "initrd"), bytes.Repeat([]byte("i"), 9000))
	pack := func(version, out string) {
		t.Helper()
		code, stdout, errOut := run(t, "firmware", "pack", "--key", key, "--kernel", kernel, "--initramfs", initrd,
			"--version", version, "--min-version", "1.0.0", "--board", "nvr4,nvr8", "-o", out)
		if code != 0 || !strings.Contains(stdout, "signed by key") {
			t.Fatalf("pack: %d %q %q", code, stdout, errOut)
		}
	}
	good := filepath.Join(dir, "fw-2.nvrfw")
	pack("2.0.0", good)
	old := filepath.Join(dir, "fw-1.nvrfw")
	pack("1.5.0", old)
	raw, _ := os.ReadFile(good)
	corrupt := writeTestFile(t, filepath.Join(dir, "corrupt.nvrfw"), append(bytes.Clone(raw[:len(raw)-10]), bytes.Repeat([]byte("X"), 10)...))
	truncated := writeTestFile(t, filepath.Join(dir, "trunc.nvrfw"), raw[:len(raw)-1])

	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"verify ok", []string{"verify", "--pubkey", key + ".pub", good}, 0, "version:     2.0.0"},
		{"verify with policy", []string{"verify", "--pubkey", key + ".pub", "--board", "nvr8", "--current-version", "1.9.0", good}, 0, "OK"},
		{"unknown key", []string{"verify", "--pubkey", other + ".pub", good}, 1, "unknown key"},
		{"corrupt part", []string{"verify", "--pubkey", key + ".pub", corrupt}, 1, "corrupt"},
		{"truncated", []string{"verify", "--pubkey", key + ".pub", truncated}, 1, "truncated"},
		{"wrong board", []string{"verify", "--pubkey", key + ".pub", "--board", "nvr16", good}, 1, "not built for this board"},
		{"downgrade", []string{"verify", "--pubkey", key + ".pub", "--current-version", "2.0.0", old}, 1, "downgrade"},
		{"downgrade allowed", []string{"verify", "--pubkey", key + ".pub", "--current-version", "2.0.0", "--allow-downgrade", old}, 0, "OK"},
		{"below minimum", []string{"verify", "--pubkey", key + ".pub", "--current-version", "0.9", good}, 1, "minimum"},
		{"private key as trust", []string{"verify", "--pubkey", key, good}, 1, "not an ed25519 key"},
		{"verify without pubkey", []string{"verify", good}, 2, ""},
		{"pack without board", []string{"pack", "--key", key, "--kernel", kernel, "--initramfs", initrd, "--version", "1", "-o", filepath.Join(dir, "x")}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"firmware"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out+errOut, tt.contains) {
				t.Fatalf("exit %d (want %d), output %q %q; want %q", code, tt.code, out, errOut, tt.contains)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("a refused pack left its output behind")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}

	// A provisioned boot directory running slot a at version 1.2.3 (run's
	// Env.Version).
	boot := filepath.Join(dir, "boot")
	m, err := slots.New(slots.Options{Dir: boot})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(old)
	defer f.Close()
	st, _ := f.Stat()
	pubRaw, _ := os.ReadFile(key + ".pub")
	keys, _ := bundle.ParsePublicKeys(pubRaw)
	b, err := bundle.Open(f, st.Size(), bundle.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Provision(context.Background(), b, nil); err != nil {
		t.Fatal(err)
	}
	cmdA := writeTestFile(t, filepath.Join(dir, "cmdline-a"), []byte("console=ttyS0 nvr.slot=a\n"))
	cmdB := writeTestFile(t, filepath.Join(dir, "cmdline-b"), []byte("console=ttyS0 nvr.slot=b\n"))
	steps := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"install", "--pubkey", other + ".pub", "--boot", boot, "--cmdline", cmdA, good}, 1, "unknown key"},
		{[]string{"install", "--pubkey", key + ".pub", "--boot", boot, "--cmdline", cmdA, "--board", "nvr4", good}, 0, "installed in slot b"},
		{[]string{"status", "--boot", boot, "--cmdline", cmdA}, 0, "slot b: 2.0.0                    trial"},
		{[]string{"confirm", "--boot", boot, "--cmdline", cmdB}, 0, "slot b confirmed"},
		{[]string{"status", "--boot", boot, "--cmdline", cmdB}, 0, "slot b: 2.0.0                    booted,default"},
		{[]string{"confirm", "--boot", boot, "--cmdline", cmdB}, 0, "already is the default"},
		{[]string{"install", "--pubkey", key + ".pub", "--boot", boot, "--cmdline", cmdA, good}, 1, "unconfirmed"},
	}
	for i, s := range steps {
		code, out, errOut := run(t, append([]string{"firmware"}, s.args...)...)
		if code != s.code || !strings.Contains(out+errOut, s.contains) {
			t.Fatalf("step %d %v: exit %d (want %d), output %q %q; want %q", i, s.args[0], code, s.code, out, errOut, s.contains)
		}
	}
}
