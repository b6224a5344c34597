package qemutest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// vmOptions describes one guest.
type vmOptions struct {
	name     string   // names the logs
	kernel   string   // uncompressed vmlinux
	initrd   string   // image initramfs with the test overlay
	cmdline  []string // extra kernel command line words
	disks    []string // raw disk images, in order (vda, vdb, ...)
	apiPort  int      // host port forwarded to the guest's 443
	watchdog bool     // add an i6300esb that resets the guest
	reboot   bool     // a guest reset reboots in the same QEMU (default: QEMU exits)
	memMiB   int      // default 384
	agent    bool     // a third serial port for the guest agent (v.agent)
}

// vm is one QEMU run: serial console on a socket (wait=on, so nothing is
// lost), nvrd's log on a second serial port written to a file, QMP on a
// socket.
type vm struct {
	t       *testing.T
	cmd     *exec.Cmd
	conn    net.Conn
	qmp     *qmp
	start   time.Time
	logPath string
	nvrdLog string
	agent   net.Conn // the guest agent's serial port, or nil
	agentRd *bufio.Reader

	mu      sync.Mutex
	console bytes.Buffer
	mark    int // expect searches from here
	seen    chan struct{}
	readers sync.WaitGroup
	exited  chan error
	stderr  bytes.Buffer
	stopped bool
}

// startVM boots a guest; t.Cleanup stops it.
func startVM(t *testing.T, ctx context.Context, o vmOptions) *vm {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64: %v", err)
	}
	if o.memMiB == 0 {
		o.memMiB = 384
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "serial.sock")
	qmpSock := filepath.Join(dir, "qmp.sock")
	logDir := filepath.Join(outDir, "qemutest")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	v := &vm{t: t, seen: make(chan struct{}, 1), exited: make(chan error, 1),
		logPath: filepath.Join(logDir, o.name+".console.log"), nvrdLog: filepath.Join(logDir, o.name+".nvrd.log")}
	os.Remove(v.nvrdLog)
	cmdline := append([]string{"console=ttyS0", "panic=-1", "nvr.log=/dev/ttyS1",
		"nvr.net=eth0,10.0.2.15/24,10.0.2.2"}, o.cmdline...)
	// The guest reaches the host's camera simulator at 10.0.2.2 (slirp's
	// host address, which is the host's 127.0.0.1), so restrict=off. A
	// guestfwd would keep restrict=on, but QEMU serves each guestfwd rule
	// through one chardev connection, which a guest reset leaves stuck.
	netdev := fmt.Sprintf("user,id=n0,restrict=off,hostfwd=tcp:127.0.0.1:%d-:443", o.apiPort)
	args := []string{
		"-nodefaults", "-display", "none", "-S", "-m", fmt.Sprint(o.memMiB),
		"-accel", "tcg", "-cpu", "max", "-rtc", "base=utc",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
		"-chardev", "socket,id=ser0,path=" + sock + ",server=on,wait=on",
		"-serial", "chardev:ser0",
		"-chardev", "file,id=ser1,path=" + v.nvrdLog,
		"-serial", "chardev:ser1",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-kernel", o.kernel, "-initrd", o.initrd, "-append", strings.Join(cmdline, " "),
	}
	agentSock := filepath.Join(dir, "agent.sock")
	if o.agent {
		args = append(args, "-chardev", "socket,id=ser2,path="+agentSock+",server=on,wait=off", "-serial", "chardev:ser2")
	}
	if !o.reboot {
		args = append(args, "-no-reboot")
	}
	for i, d := range o.disks {
		args = append(args, "-drive", fmt.Sprintf("file=%s,format=raw,if=none,id=d%d,cache=writeback", d, i),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=d%d,id=disk%d", i, i))
	}
	if o.watchdog {
		args = append(args, "-device", "i6300esb", "-action", "watchdog=reset")
	}
	v.cmd = exec.CommandContext(ctx, qemu, args...)
	v.cmd.Stderr = &v.stderr
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() { v.exited <- v.cmd.Wait() }()
	t.Cleanup(v.stop)
	// QEMU blocks on the console client (so no output is lost) and then
	// starts paused (-S): QMP connects before the first instruction runs,
	// so no event is missed either, and "cont" starts the clock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			v.conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu console socket: %v; qemu stderr: %s", err, v.stderr.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.readers.Add(1)
	go v.read()
	for v.qmp == nil {
		q, err := dialQMP(qmpSock)
		if err == nil {
			v.qmp = q
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qmp socket: %v; qemu stderr: %s", err, v.stderr.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o.agent {
		c, err := net.Dial("unix", agentSock)
		if err != nil {
			t.Fatalf("agent socket: %v", err)
		}
		v.agent = c
		v.agentRd = bufio.NewReader(c)
	}
	v.start = time.Now()
	if _, err := v.qmp.execute("cont", nil); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v *vm) read() {
	defer v.readers.Done()
	buf := make([]byte, 4096)
	for {
		n, err := v.conn.Read(buf)
		if n > 0 {
			v.mu.Lock()
			v.console.Write(buf[:n])
			v.mu.Unlock()
			select {
			case v.seen <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// expect waits for re on the console after the mark, moves the mark past
// the match and returns the submatches and the time since boot.
func (v *vm) expect(re *regexp.Regexp, timeout time.Duration) ([]string, time.Duration) {
	v.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		b := v.console.Bytes()[v.mark:]
		if loc := re.FindSubmatchIndex(b); loc != nil {
			var subs []string
			for i := 0; i < len(loc); i += 2 {
				if loc[i] >= 0 {
					subs = append(subs, string(b[loc[i]:loc[i+1]]))
				} else {
					subs = append(subs, "")
				}
			}
			v.mark += loc[1]
			v.mu.Unlock()
			return subs, time.Since(v.start)
		}
		v.mu.Unlock()
		select {
		case <-v.seen:
		case err := <-v.exited:
			v.exited <- err
			v.readers.Wait()
			v.mu.Lock()
			ok := re.Match(v.console.Bytes()[v.mark:])
			v.mu.Unlock()
			if ok {
				continue
			}
			v.t.Fatalf("%s: qemu exited (%v) before %q; console:\n%s\nnvrd log:\n%s", v.cmd.Path, err, re, v.tail(), v.logTail())
		case <-deadline.C:
			v.t.Fatalf("%q did not appear within %v; console:\n%s\nnvrd log:\n%s", re, timeout, v.tail(), v.logTail())
		}
	}
}

// markNow returns the current expect position.
func (v *vm) markNow() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mark
}

// rewind sets the expect position back to mark.
func (v *vm) rewind(mark int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mark = mark
}

// expectString is expect for a literal.
func (v *vm) expectString(s string, timeout time.Duration) time.Duration {
	v.t.Helper()
	_, d := v.expect(regexp.MustCompile(regexp.QuoteMeta(s)), timeout)
	return d
}

// send types s on the console.
func (v *vm) send(s string) {
	v.t.Helper()
	if _, err := v.conn.Write([]byte(s)); err != nil {
		v.t.Fatalf("console write: %v", err)
	}
}

// waitExit waits for QEMU to exit and returns its error.
func (v *vm) waitExit(timeout time.Duration) error {
	v.t.Helper()
	select {
	case err := <-v.exited:
		v.exited <- err
		v.readers.Wait()
		return err
	case <-time.After(timeout):
		v.t.Fatalf("the VM did not stop within %v; console:\n%s", timeout, v.tail())
		return nil
	}
}

// kill cuts the power: QEMU is killed at once.
func (v *vm) kill() {
	v.cmd.Process.Kill()
	v.waitExit(30 * time.Second)
}

// stop kills QEMU if still running, joins the readers and keeps the
// console log in out/image/qemutest.
func (v *vm) stop() {
	if v.stopped {
		return
	}
	v.stopped = true
	select {
	case err := <-v.exited:
		v.exited <- err
	default:
		v.cmd.Process.Kill()
	}
	err := <-v.exited
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		v.t.Errorf("qemu: %v", err)
	}
	if v.qmp != nil {
		v.qmp.close()
	}
	if v.conn != nil {
		v.conn.Close()
	}
	if v.agent != nil {
		v.agent.Close()
	}
	v.readers.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	os.WriteFile(v.logPath, v.console.Bytes(), 0o644)
}

func (v *vm) tail() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.console.Bytes()
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// logTail is the end of nvrd's log (the second serial port).
func (v *vm) logTail() string {
	b, _ := os.ReadFile(v.nvrdLog)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// qmp is a QEMU Machine Protocol client: commands, and events kept in
// arrival order.
type qmp struct {
	conn    net.Conn
	mu      sync.Mutex
	events  []qmpEvent
	replies chan json.RawMessage
	done    chan struct{}
}

// qmpEvent is one asynchronous event.
type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	At    time.Time       `json:"-"`
}

func dialQMP(path string) (*qmp, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	q := &qmp{conn: c, replies: make(chan json.RawMessage, 1), done: make(chan struct{})}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if !sc.Scan() { // the greeting
		c.Close()
		return nil, fmt.Errorf("qmp greeting: %v", sc.Err())
	}
	c.SetReadDeadline(time.Time{})
	go q.read(sc)
	if _, err := q.execute("qmp_capabilities", nil); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmp) read(sc *bufio.Scanner) {
	defer close(q.done)
	for sc.Scan() {
		var m struct {
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			Return json.RawMessage `json:"return"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch {
		case m.Event != "":
			q.mu.Lock()
			q.events = append(q.events, qmpEvent{Event: m.Event, Data: m.Data, At: time.Now()})
			q.mu.Unlock()
		case m.Error != nil:
			q.replies <- append(json.RawMessage(`{"error":`), append(m.Error, '}')...)
		default:
			q.replies <- m.Return
		}
	}
}

// execute runs one command and returns its "return" value.
func (q *qmp) execute(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case r := <-q.replies:
		if bytes.HasPrefix(r, []byte(`{"error":`)) {
			return nil, fmt.Errorf("qmp %s: %s", cmd, r)
		}
		return r, nil
	case <-q.done:
		return nil, fmt.Errorf("qmp %s: connection closed", cmd)
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("qmp %s: no reply within 30s", cmd)
	}
}

// eventsNamed returns the events seen so far with that name.
func (q *qmp) eventsNamed(name string) []qmpEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []qmpEvent
	for _, e := range q.events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

func (q *qmp) close() {
	q.conn.Close()
	<-q.done
}

// userSpaceRe is the kernel's last line before init.
var userSpaceRe = regexp.MustCompile(`Run /init as init process`)

// agentDo sends one command to the guest agent and waits for its answer.
func (v *vm) agentDo(cmd string, timeout time.Duration) error {
	v.t.Helper()
	v.agent.SetDeadline(time.Now().Add(timeout))
	defer v.agent.SetDeadline(time.Time{})
	if _, err := v.agent.Write([]byte(cmd + "\n")); err != nil {
		return fmt.Errorf("agent %q: %w", cmd, err)
	}
	for {
		line, err := v.agentRd.ReadString('\n')
		if err != nil {
			return fmt.Errorf("agent %q: %w", cmd, err)
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "ok":
			return nil
		case strings.HasPrefix(line, "error: "):
			return fmt.Errorf("agent %q: %s", cmd, line)
		}
	}
}
