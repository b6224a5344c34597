package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCamsimUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string // in stdout for 0, stderr otherwise
	}{
		{"help", []string{"camsim", "--help"}, 0, "--paths-spec"},
		{"no paths", []string{"camsim"}, 2, "no paths"},
		{"bad spec", []string{"camsim", "--path", "cam1=vp8"}, 2, "video codec"},
		{"bad generated spec", []string{"camsim", "--paths", "2", "--paths-spec", "h264,audio=opus"}, 2, "audio codec"},
		{"too many paths", []string{"camsim", "--paths", "-1"}, 2, "--paths"},
		{"argument", []string{"camsim", "--path", "cam1", "extra"}, 2, "no arguments"},
		{"bad level", []string{"camsim", "--path", "cam1", "--log-level", "loud"}, 2, "log-level"},
		{"bad auth", []string{"camsim", "--path", "cam1", "--auth", "kerberos", "--listen", "127.0.0.1:0"}, 2, "--auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, errOut)
			}
			got := errOut
			if code == 0 {
				got = out
			}
			if !strings.Contains(got, tt.contains) {
				t.Fatalf("output %q does not contain %q", got, tt.contains)
			}
		})
	}
}

// freePort returns a 127.0.0.1 address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestCamsimRuns starts "nvrd camsim", reads its control endpoint, and stops
// it by cancelling the context as SIGINT does.
func TestCamsimRuns(t *testing.T) {
	rtsp, control := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"camsim", "--listen", rtsp, "--no-udp", "--control", control,
			"--path", "cam1=h265,audio=aac,bitrate=2M", "--paths", "3", "--paths-prefix", "sim"},
			Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	}()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; {
		res, err := hc.Get("http://" + control + "/paths")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("control endpoint not up: %v (exit %v, stderr %q)", err, <-done, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{`"path": "cam1"`, `"clip": "h265.h265"`, `"path": "sim001"`, `"path": "sim003"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /paths lacks %s:\n%s", want, body)
		}
	}
	if c, err := net.DialTimeout("tcp", rtsp, time.Second); err != nil {
		t.Errorf("RTSP port: %v", err)
	} else {
		c.Close()
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("camsim did not stop on cancel")
	}
	if !strings.Contains(errb.String(), "camsim listening") {
		t.Errorf("log lacks the listening line: %q", errb.String())
	}
}
