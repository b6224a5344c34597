package interop

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMediaMTXConfig(t *testing.T) {
	opts := ServerOptions{
		RecordDir: "/rec", RecordSegment: 10 * time.Second,
		Paths: map[string]MediaMTXPath{
			"x":      {},
			"cam001": {Source: "rtsp://127.0.0.1:8554/cam001", Record: true},
			"cam002": {Source: "rtsp://127.0.0.1:8554/cam002", SourceTransport: "udp"},
		},
	}
	conf := MediaMTXConfig(opts, 18554, 18000)
	for _, want := range []string{
		"rtspAddress: 127.0.0.1:18554\n", "rtpAddress: 127.0.0.1:18000\n", "rtcpAddress: 127.0.0.1:18001\n",
		"rtmp: no\n", "hls: no\n", "webrtc: no\n", "srt: no\n", "api: no\n", "metrics: no\n",
		`recordPath: "/rec/%path/%Y-%m-%d_%H-%M-%S-%f"`, "recordSegmentDuration: 10s\n",
		"  \"cam001\":\n    source: \"rtsp://127.0.0.1:8554/cam001\"\n    rtspTransport: tcp\n    record: true\n",
		"  \"cam002\":\n    source: \"rtsp://127.0.0.1:8554/cam002\"\n    rtspTransport: udp\n    record: false\n",
		"  \"x\":\n    source: \"publisher\"\n    record: false\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	if strings.Index(conf, `"cam001"`) > strings.Index(conf, `"cam002"`) {
		t.Error("paths not in name order")
	}
}

func TestFreePorts(t *testing.T) {
	tcp, err := FreeTCPPort()
	if err != nil || tcp <= 0 {
		t.Fatalf("FreeTCPPort = %d, %v", tcp, err)
	}
	udp, err := FreeUDPPortPair()
	if err != nil || udp <= 0 || udp%2 != 0 {
		t.Fatalf("FreeUDPPortPair = %d, %v", udp, err)
	}
}

func TestStartMediaMTXValidates(t *testing.T) {
	if _, err := StartMediaMTX(context.Background(), ServerOptions{}); err == nil {
		t.Error("StartMediaMTX without options: no error")
	}
	if _, err := BuildMediaMTX(context.Background(), BuildOptions{Version: "../x", CacheDir: t.TempDir()}); !errors.Is(err, ErrBuild) {
		t.Errorf("BuildMediaMTX with a bad version: %v, want ErrBuild", err)
	}
}

// TestProcessClose stops a long-running process with SIGINT, and reports a
// process that failed on its own.
func TestProcessClose(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	p, err := startProcess("sleep", exec.Command(sleep, "60"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.exited(); err != nil {
		t.Fatalf("running process reported exited: %v", err)
	}
	start := time.Now()
	if err := p.close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("close took %v", d)
	}
	if err := p.close(); err != nil {
		t.Errorf("second close: %v", err)
	}

	f, err := startProcess("false", exec.Command(sleep, "not-a-duration"))
	if err != nil {
		t.Fatal(err)
	}
	<-f.done
	if err := f.close(); !errors.Is(err, ErrExited) {
		t.Errorf("close of a failed process: %v, want ErrExited", err)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"hello ", "world", "!"} {
		b.Write([]byte(s))
	}
	if got := b.String(); got != "o world!" {
		t.Errorf("tail = %q", got)
	}
}
