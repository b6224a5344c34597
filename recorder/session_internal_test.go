package recorder

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

func TestByteGate(t *testing.T) {
	g := newByteGate(10)
	if !g.acquire(6) || !g.acquire(4) {
		t.Fatal("acquire within the bound failed")
	}
	got := make(chan bool, 1)
	go func() { got <- g.acquire(3) }()
	select {
	case <-got:
		t.Fatal("acquire beyond the bound did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	g.release(6)
	if !<-got {
		t.Fatal("acquire failed after release")
	}
	g.release(4)
	g.release(3)
	if !g.acquire(100) {
		t.Fatal("a unit larger than the bound did not pass an empty queue")
	}
	go func() { got <- g.acquire(1) }()
	time.Sleep(20 * time.Millisecond)
	g.close()
	if <-got {
		t.Fatal("acquire succeeded after close")
	}
	g.close()
}

// fakeConnector fails or hangs as told and records when it was called.
type fakeConnector struct {
	mu    sync.Mutex
	calls []time.Time
	hang  bool
}

func (f *fakeConnector) connect(ctx context.Context, cfg connectConfig) (camConn, error) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, errors.New("connection refused")
}

func (f *fakeConnector) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type nopWriter struct{}

func (nopWriter) SetTracks([]ringstore.Track) error      { return nil }
func (nopWriter) Append(ringstore.Frame) (uint64, error) { return 0, nil }
func (nopWriter) MarkGap(ringstore.GapCause, time.Time)  {}

func TestSessionBackoffAndCancel(t *testing.T) {
	tests := []struct {
		name string
		hang bool
	}{
		{"refused connections back off", false},
		{"a connect that never returns is cancelled", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeConnector{hang: tc.hang}
			s, err := NewSession(Camera{Name: "cam", URL: "rtsp://127.0.0.1:1/x"}, nopWriter{}, Options{
				BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond, BackoffJitter: -1,
				connector: fc,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			if tc.hang {
				time.Sleep(100 * time.Millisecond)
				if st := s.Status(); st.State != StateConnecting || fc.count() != 1 {
					t.Fatalf("state %v after %d calls", st.State, fc.count())
				}
			} else {
				deadline := time.Now().Add(5 * time.Second)
				for fc.count() < 6 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if err := s.Run(ctx); !errors.Is(err, ErrRunning) {
				t.Errorf("second Run: %v", err)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			st := s.Status()
			if st.State != StateStopped {
				t.Errorf("state %v", st.State)
			}
			if tc.hang {
				return
			}
			if st.Reconnects < 5 || st.LastError == "" {
				t.Errorf("reconnects %d last error %q", st.Reconnects, st.LastError)
			}
			fc.mu.Lock()
			defer fc.mu.Unlock()
			// Delays 20, 40, 80, 80 ms: the gaps between attempts grow to the cap.
			for i, want := range []time.Duration{20, 40, 80, 80} {
				got := fc.calls[i+1].Sub(fc.calls[i])
				if got < want*time.Millisecond || got > want*time.Millisecond+time.Second {
					t.Errorf("delay before attempt %d: %v, want about %v ms", i+2, got, want)
				}
			}
		})
	}
}
