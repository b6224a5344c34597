package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

func TestClusterPairAndImport(t *testing.T) {
	out, cfg := t.TempDir(), t.TempDir()
	var so, se bytes.Buffer
	env := Env{Stdout: &so, Stderr: &se}
	if code := Main(context.Background(), []string{"cluster", "pair", "--nodes", "a,b,w", "--out", out}, env); code != 0 {
		t.Fatalf("pair: exit %d: %s", code, se.String())
	}
	if n := strings.Count(so.String(), ".pem"); n != 3 {
		t.Fatalf("pair wrote %d bundles: %s", n, so.String())
	}
	if code := Main(context.Background(), []string{"cluster", "import", "--config", cfg, filepath.Join(out, "b.pem")}, env); code != 0 {
		t.Fatalf("import: exit %d: %s", code, se.String())
	}
	b, err := pairing.Load(cfg)
	if err != nil || b.NodeID != "b" {
		t.Fatalf("loaded %v, %v", b, err)
	}
	for _, args := range [][]string{
		{"cluster", "import", "--config", cfg, filepath.Join(out, "missing.pem")},
		{"cluster", "pair"},
		{"witness", "--data", t.TempDir()},
		{"witness", "--data", t.TempDir(), "--bind", "127.0.0.1:0", "--peers", "a=127.0.0.1:1"},
	} {
		if code := Main(context.Background(), args, env); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestWitnessRunsAndStops starts `nvrd witness` with two (absent) data nodes
// and checks it serves until its context ends, then exits 0.
func TestWitnessRunsAndStops(t *testing.T) {
	out, data := t.TempDir(), t.TempDir()
	var so, se bytes.Buffer
	env := Env{Stdout: &so, Stderr: &se}
	if code := Main(context.Background(), []string{"cluster", "pair", "--nodes", "a,b,witness", "--out", out}, env); code != 0 {
		t.Fatalf("pair: %s", se.String())
	}
	if code := Main(context.Background(), []string{"cluster", "import", "--config", data, filepath.Join(out, "witness.pem")}, env); code != 0 {
		t.Fatalf("import: %s", se.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	code := Main(ctx, []string{"witness", "--data", data, "--bind", "127.0.0.1:0", "--advertise", "127.0.0.1:1",
		"--peers", "a=127.0.0.1:2,b=127.0.0.1:3"}, Env{Stdout: &so, Stderr: &se})
	if code != 0 || time.Since(start) < 600*time.Millisecond {
		t.Fatalf("witness exit %d after %v: %s", code, time.Since(start), se.String())
	}
	if !strings.Contains(se.String(), "node started") {
		t.Fatalf("witness did not start: %s", se.String())
	}
}
