package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultMediaMTXVersion is the MediaMTX release the tests and the
// benchmark compare against.
const DefaultMediaMTXVersion = "v1.15.3"

const mediamtxModule = "github.com/bluenviron/mediamtx"

// ErrBuild: MediaMTX could not be downloaded or built.
var ErrBuild = errors.New("interop: building MediaMTX")

// BuildOptions says which MediaMTX to build and where to cache it.
type BuildOptions struct {
	// Version is the module version. "": DefaultMediaMTXVersion.
	Version string
	// CacheDir holds the built binaries, one per version
	// (CacheDir/VERSION/mediamtx). "": os.UserCacheDir()/nvr-mediamtx.
	CacheDir string
	// Go is the go command. "": "go" from PATH.
	Go string
}

// BuildMediaMTX returns the path of a MediaMTX binary of opts.Version,
// building it when the cache has none (a minute or more on a busy machine;
// then instant). Errors wrap ErrBuild.
func BuildMediaMTX(ctx context.Context, opts BuildOptions) (string, error) {
	if opts.Version == "" {
		opts.Version = DefaultMediaMTXVersion
	}
	if opts.Go == "" {
		opts.Go = "go"
	}
	if opts.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("%w: no cache directory: %w", ErrBuild, err)
		}
		opts.CacheDir = filepath.Join(d, "nvr-mediamtx")
	}
	if strings.ContainsAny(opts.Version, `/\`) || !strings.HasPrefix(opts.Version, "v") {
		return "", fmt.Errorf("%w: version %q: want vX.Y.Z", ErrBuild, opts.Version)
	}
	bin := filepath.Join(opts.CacheDir, opts.Version, "mediamtx")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBuild, err)
	}
	src, err := downloadModule(ctx, opts.Go, mediamtxModule+"@"+opts.Version)
	if err != nil {
		return "", err
	}
	work, err := os.MkdirTemp("", "nvr-mediamtx-src-")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBuild, err)
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("%w: copying %s: %w", ErrBuild, src, err)
	}
	if err := makeWritable(work); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBuild, err)
	}
	generated := map[string]string{
		"internal/core/VERSION":           opts.Version,
		"internal/servers/hls/hls.min.js": "",
	}
	for name, content := range generated {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("%w: writing %s: %w", ErrBuild, name, err)
		}
	}
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	cmd := exec.CommandContext(ctx, opts.Go, "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("%w: go build: %w\n%s", ErrBuild, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("%w: %w", ErrBuild, err)
	}
	return bin, nil
}

// downloadModule runs go mod download -json and returns the module's
// directory in the module cache.
func downloadModule(ctx context.Context, goCmd, mod string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", mod)
	cmd.Dir = os.TempDir() // outside any module: no go.mod is consulted
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || err != nil || info.Error != "" || info.Dir == "" {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("%w: go mod download %s: %v %s %s", ErrBuild, mod, err, info.Error, stderr)
	}
	return info.Dir, nil
}

// makeWritable adds the owner's write permission to a tree copied from the
// read-only module cache.
func makeWritable(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, fi.Mode().Perm()|0o200)
	})
}

// MediaMTXPath is one path of a MediaMTX server.
type MediaMTXPath struct {
	// Source is "publisher" (a client such as ffmpeg publishes) or an
	// rtsp:// URL MediaMTX pulls from. "": "publisher".
	Source string
	// SourceTransport is how a pulled source's RTP travels: "tcp", "udp"
	// or "automatic". "": "tcp".
	SourceTransport string
	// Record writes the path's stream to disk (fMP4 segments under
	// ServerOptions.RecordDir).
	Record bool
}

// ServerOptions configures a MediaMTX server.
type ServerOptions struct {
	// Binary is the mediamtx executable (BuildMediaMTX). Required.
	Binary string
	// Dir holds the configuration file, and recordings unless RecordDir
	// is set. Required (tests pass t.TempDir()).
	Dir string
	// RecordDir is where recorded segments go, as
	// RecordDir/PATH/YYYY-mm-dd_HH-MM-SS-ffffff.mp4. "": Dir/recordings.
	RecordDir string
	// RecordSegment is the length of a recorded segment. 0: 10 s.
	RecordSegment time.Duration
	// Paths are the served paths by name. Required.
	Paths map[string]MediaMTXPath
	// ReadyTimeout bounds the wait for the RTSP port to accept. 0: 20 s.
	ReadyTimeout time.Duration
}

// Server is a running MediaMTX bound to free loopback ports: RTSP on TCP,
// RTP and RTCP on UDP; RTMP, HLS, WebRTC, SRT, the API and metrics are off.
type Server struct {
	opts ServerOptions
	addr string // RTSP host:port
	proc *process
}

// StartMediaMTX writes a configuration for opts and starts MediaMTX with
// it, returning once its RTSP port accepts connections. Close stops it.
func StartMediaMTX(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Binary == "" || opts.Dir == "" || len(opts.Paths) == 0 {
		return nil, errors.New("interop: MediaMTX options: Binary, Dir and Paths are required")
	}
	if opts.RecordDir == "" {
		opts.RecordDir = filepath.Join(opts.Dir, "recordings")
	}
	if opts.RecordSegment == 0 {
		opts.RecordSegment = 10 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 20 * time.Second
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		s, err := startMediaMTXOnce(ctx, opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, ErrExited) {
			break
		}
	}
	return nil, lastErr
}

func startMediaMTXOnce(ctx context.Context, opts ServerOptions) (*Server, error) {
	rtsp, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	rtp, err := FreeUDPPortPair()
	if err != nil {
		return nil, err
	}
	conf := MediaMTXConfig(opts, rtsp, rtp)
	confPath := filepath.Join(opts.Dir, "mediamtx.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("interop: writing MediaMTX configuration: %w", err)
	}
	cmd := exec.Command(opts.Binary, confPath)
	cmd.Dir = opts.Dir
	p, err := startProcess("mediamtx", cmd)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(rtsp)), proc: p}
	if err := waitListening(ctx, s.addr, opts.ReadyTimeout, p); err != nil {
		_ = p.close()
		return nil, err
	}
	return s, nil
}

// waitListening polls addr until it accepts a TCP connection, the process
// exits, ctx ends or the timeout passes.
func waitListening(ctx context.Context, addr string, timeout time.Duration, p *process) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := p.exited(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("interop: %s not listening on %s after %v: %w\n%s", p.name, addr, timeout, err, p.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MediaMTXConfig renders the mediamtx.yml for opts with RTSP on
// 127.0.0.1:rtsp and RTP/RTCP on 127.0.0.1:rtp and rtp+1.
func MediaMTXConfig(opts ServerOptions, rtsp, rtp int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `logLevel: warn
logDestinations: [stdout]
readTimeout: 10s
writeTimeout: 10s
writeQueueSize: 512
authMethod: internal
authInternalUsers:
- user: any
  pass:
  ips: []
  permissions:
  - action: publish
    path:
  - action: read
    path:
  - action: playback
    path:
api: no
metrics: no
pprof: no
playback: no
rtsp: yes
rtspTransports: [udp, tcp]
rtspEncryption: "no"
rtspAddress: 127.0.0.1:%d
rtpAddress: 127.0.0.1:%d
rtcpAddress: 127.0.0.1:%d
rtmp: no
hls: no
webrtc: no
srt: no
pathDefaults:
  recordPath: %s
  recordFormat: fmp4
  recordPartDuration: 1s
  recordSegmentDuration: %s
  recordDeleteAfter: 0s
paths:
`, rtsp, rtp, rtp+1, yamlQuote(filepath.Join(opts.RecordDir, "%path", "%Y-%m-%d_%H-%M-%S-%f")), opts.RecordSegment)
	names := make([]string, 0, len(opts.Paths))
	for n := range opts.Paths {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := opts.Paths[n]
		src := p.Source
		if src == "" {
			src = "publisher"
		}
		tr := p.SourceTransport
		if tr == "" {
			tr = "tcp"
		}
		fmt.Fprintf(&b, "  %s:\n    source: %s\n", yamlQuote(n), yamlQuote(src))
		if src != "publisher" {
			fmt.Fprintf(&b, "    rtspTransport: %s\n", tr)
		}
		fmt.Fprintf(&b, "    record: %v\n", p.Record)
	}
	return b.String()
}

// yamlQuote quotes s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	q, _ := json.Marshal(s) // JSON strings are YAML double-quoted scalars
	return string(q)
}

// Addr returns the RTSP listen address (host:port).
func (s *Server) Addr() string { return s.addr }

// URL returns the rtsp:// URL of a path.
func (s *Server) URL(path string) string { return "rtsp://" + s.addr + "/" + path }

// RecordDir returns where recorded segments go (one directory per path).
func (s *Server) RecordDir() string { return s.opts.RecordDir }

// PID returns the server's process ID.
func (s *Server) PID() int { return s.proc.PID() }

// Output returns the tail of the server's log.
func (s *Server) Output() string { return s.proc.Output() }

// Err returns an error wrapping ErrExited when the server has ended on its
// own, else nil.
func (s *Server) Err() error { return s.proc.exited() }

// Close stops the server and waits for it; it is idempotent.
func (s *Server) Close() error { return s.proc.close() }

// FreeTCPPort returns a TCP port free on 127.0.0.1 a moment ago.
func FreeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("interop: finding a free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeUDPPortPair returns an even UDP port p such that p and p+1 were both
// free on 127.0.0.1 a moment ago (RTP and RTCP).
func FreeUDPPortPair() (int, error) {
	for i := 0; i < 50; i++ {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("interop: finding free UDP ports: %w", err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if p%2 == 1 {
			p--
		}
		c1, err1 := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		c2, err2 := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		for _, c := range []net.PacketConn{c1, c2} {
			if c != nil {
				c.Close()
			}
		}
		if err1 == nil && err2 == nil {
			return p, nil
		}
	}
	return 0, errors.New("interop: no free pair of UDP ports found in 50 tries")
}
