package main

import (
	"os"
	"os/exec"
	"sync"
	"time"
)

// child is a process the benchmark started.
type child struct {
	name   string
	pid    int
	cmd    *exec.Cmd
	out    *tail
	done   chan struct{}
	stopFn func() // for processes started elsewhere (interop.Server)
	once   sync.Once
	// signaled: SIGINT was sent. It is sent once: ffmpeg aborts its output
	// I/O on a second one, leaving the last segment without its moov.
	signaled bool
}

// startChild starts name with args in dir, its output kept in a bounded
// tail.
func startChild(label, dir, name string, args ...string) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	c := &child{name: label, cmd: cmd, out: &tail{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.pid = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) output() string {
	if c.out == nil {
		return ""
	}
	return c.out.String()
}

// interrupt sends SIGINT to a process started here (stop waits for it).
func (c *child) interrupt() {
	if c.cmd != nil && !c.exited() && !c.signaled {
		c.signaled = true
		_ = c.cmd.Process.Signal(os.Interrupt)
	}
}

// stop sends SIGINT, waits up to 10 s, then kills; idempotent.
func (c *child) stop() {
	c.once.Do(func() {
		if c.stopFn != nil {
			c.stopFn()
			return
		}
		c.interrupt()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// tail keeps the last 8 KiB written.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append(t.b[:0], t.b[len(t.b)-8<<10:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
