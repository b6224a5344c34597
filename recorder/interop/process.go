package interop

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// ErrExited: a process this package started ended before it was closed.
var ErrExited = errors.New("interop: process exited")

// stopGrace is how long Close waits after SIGINT before SIGKILL.
const stopGrace = 5 * time.Second

// process is one started command, its output tail, and the goroutine that
// waits for it.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait's answer, set before done closes

	closeOnce sync.Once
	closeErr  error
}

// startProcess starts cmd with its standard output and error captured in a
// bounded buffer, and a goroutine waiting for it.
func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	p := &process{name: name, cmd: cmd, out: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("interop: starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *process) PID() int { return p.cmd.Process.Pid }

// exited returns a non-nil error wrapping ErrExited, with the output's
// tail, when the process has ended.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%w: %s: %v\n%s", ErrExited, p.name, p.err, p.out.String())
	default:
		return nil
	}
}

// close stops the process (SIGINT, SIGKILL after stopGrace) and waits for
// it. It reports an error only when the process had already failed on its
// own, or would not stop.
func (p *process) close() error {
	p.closeOnce.Do(func() {
		if err := p.exited(); err != nil {
			p.closeErr = err
			return
		}
		_ = p.cmd.Process.Signal(os.Interrupt)
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.done
			p.closeErr = fmt.Errorf("interop: %s did not stop within %v of SIGINT; killed", p.name, stopGrace)
		}
	})
	return p.closeErr
}

// Output returns the tail of the process's standard output and error.
func (p *process) Output() string { return p.out.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(b)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
