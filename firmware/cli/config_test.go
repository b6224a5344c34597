package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/firmware/config"
)

func TestConfigExportImport(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := config.Open(config.Options{Path: src, Argon2: config.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("test", config.AddCamera{Camera: config.Camera{Name: "lobby", URL: "rtsp://192.0.2.5/s", Username: "u", Password: "pw-123"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		return code, out.String(), errb.String()
	}
	file := filepath.Join(dir, "site.conf")
	if code, _, stderr := run("config", "export", "--db", src, "--out", file); code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	dst := filepath.Join(dir, "dst.db")
	if code, out, stderr := run("config", "import", "--db", dst, file); code != 0 || !strings.Contains(out, "1 cameras") {
		t.Fatalf("import: %d %s %s", code, out, stderr)
	}
	code, out, _ := run("config", "show", "--db", dst)
	if code != 0 || !strings.Contains(out, `"name": "lobby"`) || strings.Contains(out, "pw-123") {
		t.Errorf("show: %d %s", code, out)
	}
	if code, out, _ := run("config", "audit", "--db", dst); code != 0 || !strings.Contains(out, "cli:import") {
		t.Errorf("audit: %d %s", code, out)
	}
	// A damaged file is refused and changes nothing.
	b, _ := os.ReadFile(file)
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, bytes.Replace(b, []byte("lobby"), []byte("lobbx"), 1), 0o600)
	if code, _, stderr := run("config", "import", "--db", dst, bad); code != 1 || !strings.Contains(stderr, "checksum") {
		t.Errorf("damaged import: %d %s", code, stderr)
	}
	if code, _, _ := run("config", "export", "--out", file); code != 2 {
		t.Errorf("export without --db: exit %d, want 2", code)
	}
}
