package appliance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSleep records requested delays and returns at once.
type fakeSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.delays = append(f.delays, d)
	f.mu.Unlock()
	return ctx.Err()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSupervisorRestartsFailingComponentWithoutTouchingOthers(t *testing.T) {
	var panics, healthyRuns atomic.Int32
	fs := &fakeSleep{}
	sup, err := NewSupervisor(SupervisorOptions{Sleep: fs.sleep, MinBackoff: time.Second, MaxBackoff: 4 * time.Second},
		Component{Name: "flaky", Run: func(ctx context.Context) error {
			if panics.Add(1) <= 4 {
				panic("camera session exploded")
			}
			<-ctx.Done()
			return nil
		}},
		Component{Name: "healthy", Run: func(ctx context.Context) error {
			healthyRuns.Add(1)
			<-ctx.Done()
			return nil
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	waitFor(t, "flaky to settle", func() bool { return panics.Load() >= 5 })
	waitFor(t, "flaky running", func() bool { return sup.Status()[0].State == StateRunning })

	st := sup.Status()
	if st[0].Restarts != 4 || st[0].LastError == "" {
		t.Errorf("flaky status = %+v, want 4 restarts with the panic recorded", st[0])
	}
	if st[1].Restarts != 0 || healthyRuns.Load() != 1 {
		t.Errorf("healthy component was disturbed: %+v, runs %d", st[1], healthyRuns.Load())
	}
	fs.mu.Lock()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	if len(fs.delays) != len(want) {
		t.Fatalf("backoff delays %v, want %v", fs.delays, want)
	}
	for i := range want {
		if fs.delays[i] != want[i] {
			t.Errorf("backoff %d = %v, want %v (capped doubling)", i, fs.delays[i], want[i])
		}
	}
	fs.mu.Unlock()

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, s := range sup.Status() {
		if s.State != StateStopped {
			t.Errorf("%s state %s after shutdown, want stopped", s.Name, s.State)
		}
	}
}

func TestSupervisorTreatsEarlyReturnAsFailure(t *testing.T) {
	var runs atomic.Int32
	fs := &fakeSleep{}
	sup, err := NewSupervisor(SupervisorOptions{Sleep: fs.sleep}, Component{Name: "quitter", Run: func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			return nil
		}
		if runs.Load() == 2 {
			return errors.New("disk went away")
		}
		<-ctx.Done()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sup.Run(ctx)
	waitFor(t, "third run", func() bool { return runs.Load() >= 3 })
	waitFor(t, "status", func() bool { return sup.Status()[0].Restarts == 2 })
	if got := sup.Status()[0].LastError; got != "disk went away" {
		t.Errorf("last error %q", got)
	}
}

func TestNewSupervisorValidates(t *testing.T) {
	run := func(context.Context) error { return nil }
	if _, err := NewSupervisor(SupervisorOptions{}, Component{Name: "a", Run: run}, Component{Name: "a", Run: run}); err == nil {
		t.Error("duplicate names accepted")
	}
	if _, err := NewSupervisor(SupervisorOptions{}, Component{Run: run}); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := NewSupervisor(SupervisorOptions{MinBackoff: time.Minute, MaxBackoff: time.Second}); err == nil {
		t.Error("max backoff below min accepted")
	}
}
