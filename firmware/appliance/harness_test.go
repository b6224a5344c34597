package appliance

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

// formatStore formats a store of size bytes in a fresh temp dir.
func formatStore(t *testing.T, size int64) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "store")
	if _, err := ringstore.Format(context.Background(), data, ringstore.FormatOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	return data
}

// startSim serves paths on a free loopback port until the test ends.
func startSim(t *testing.T, opts camsim.Options, paths map[string]camsim.PathConfig) *camsim.Simulator {
	t.Helper()
	opts.Address = "127.0.0.1:0"
	sim, err := camsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range paths {
		if err := sim.AddPath(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := sim.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(); cancel() })
	return sim
}

// startApp runs the appliance with opts (API on a free loopback port, logs
// discarded unless opts has a logger) and returns the API's address once it
// is ready, and a stop function that cancels Run and checks it returned
// cleanly (also called when the test ends).
func startApp(t *testing.T, opts Options) (string, func()) {
	t.Helper()
	if opts.APIAddr == "" {
		opts.APIAddr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ready := make(chan net.Addr, 1)
	opts.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	var addr string
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("appliance not ready after 30s")
	}
	stopped := false
	stop := func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return addr, stop
}
