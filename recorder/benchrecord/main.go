package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nvrfw/nvr/recorder/interop"
	"github.com/nvrfw/nvr/ringstore"
)

// config is the command line.
type config struct {
	cameras  []int
	warmup   time.Duration
	measure  time.Duration
	bitrate  string
	which    []string
	repo     string
	keepTemp bool
	// cpuProfile: nvrd run writes a CPU profile of its whole run here
	// (with the camera count appended), for finding where its CPU goes.
	cpuProfile string
}

func main() {
	var cfg config
	cams := flag.String("cameras", "50,100", "comma-separated camera counts")
	flag.DurationVar(&cfg.warmup, "warmup", 10*time.Second, "time after a recorder starts before the window")
	flag.DurationVar(&cfg.measure, "measure", 30*time.Second, "measurement window")
	flag.StringVar(&cfg.bitrate, "bitrate", "4M", "video bitrate of each simulated camera")
	which := flag.String("recorders", "ffmpeg,mediamtx,nvrd", "recorders to measure, in order")
	flag.StringVar(&cfg.repo, "repo", ".", "the repository root (testdata/clips, firmware/cmd/nvrd)")
	flag.BoolVar(&cfg.keepTemp, "keep", false, "keep the temporary directory")
	flag.StringVar(&cfg.cpuProfile, "nvrd-cpuprofile", "", "write nvrd's CPU profile to this path, suffixed with the camera count")
	flag.Parse()
	for _, s := range strings.Split(*cams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 999 {
			fatalf("-cameras: %q", s)
		}
		cfg.cameras = append(cfg.cameras, n)
	}
	cfg.which = strings.Split(*which, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		stop()
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchrecord: "+format+"\n", a...)
	os.Exit(1)
}

// result is one recorder's figures at one camera count.
type result struct {
	recorder        string
	cameras         int
	procs           int
	cpuPerCamPct    float64 // % of one core per camera
	rssPerCamMiB    float64
	simCPUPerCamPct float64
	sent, kept      uint64
	// windowSent and windowKept count video frames captured by the
	// simulator inside the measurement window and stored with a time
	// inside it (ours only: segment files carry no wall time).
	windowSent, windowKept uint64
	// gaps counts the gaps ours marked in the store over the run, by cause.
	gaps   map[string]int
	window time.Duration
}

func run(ctx context.Context, cfg config) error {
	repo, err := filepath.Abs(cfg.repo)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-record-")
	if err != nil {
		return err
	}
	if !cfg.keepTemp {
		defer os.RemoveAll(tmp)
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return fmt.Errorf("ffmpeg: %w", err)
	}
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		return fmt.Errorf("ffprobe: %w", err)
	}
	logf("building nvrd and MediaMTX %s", interop.DefaultMediaMTXVersion)
	nvrd := filepath.Join(tmp, "nvrd")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", nvrd, "./firmware/cmd/nvrd")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building nvrd: %w\n%s", err, out)
	}
	mtx, err := interop.BuildMediaMTX(ctx, interop.BuildOptions{})
	if err != nil {
		return err
	}
	t := tools{ffmpeg: ffmpeg, ffprobe: ffprobe, nvrd: nvrd, mediamtx: mtx, clips: filepath.Join(repo, "testdata", "clips")}
	var results []result
	for _, n := range cfg.cameras {
		rs, err := runCount(ctx, cfg, t, filepath.Join(tmp, strconv.Itoa(n)), n)
		results = append(results, rs...)
		if err != nil {
			printResults(os.Stdout, results)
			return err
		}
	}
	printResults(os.Stdout, results)
	return nil
}

// tools are the executables the benchmark runs.
type tools struct {
	ffmpeg, ffprobe, nvrd, mediamtx, clips string
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
}

// runCount starts the simulator with n cameras and measures each recorder
// against it in turn.
func runCount(ctx context.Context, cfg config, t tools, dir string, n int) ([]result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rtspPort, err := interop.FreeTCPPort()
	if err != nil {
		return nil, err
	}
	ctlPort, err := interop.FreeTCPPort()
	if err != nil {
		return nil, err
	}
	simAddr := fmt.Sprintf("127.0.0.1:%d", rtspPort)
	ctl := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
	sim, err := startChild("camsim", dir, t.nvrd, "camsim", "--listen", simAddr, "--no-udp",
		"--control", fmt.Sprintf("127.0.0.1:%d", ctlPort), "--clips", t.clips, "--frame-history", strconv.Itoa(frameHistory(cfg)),
		"--paths", strconv.Itoa(n), "--paths-spec", "h264,bitrate="+cfg.bitrate, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	if err := waitHTTP(ctx, ctl+"/paths", 20*time.Second); err != nil {
		return nil, fmt.Errorf("camsim: %w\n%s", err, sim.out.String())
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("cam%03d", i+1)
	}
	var results []result
	for _, which := range cfg.which {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		rdir := filepath.Join(dir, which)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return results, err
		}
		logf("%d cameras: %s", n, which)
		r, err := measure(ctx, cfg, t, which, rdir, simAddr, ctl, sim.cmd.Process.Pid, names)
		if err != nil {
			return results, fmt.Errorf("%s with %d cameras: %w", which, n, err)
		}
		results = append(results, r)
		logf("%d cameras: %s: %.3f %% of a core per camera, %.2f MiB per camera, kept %d of %d frames",
			n, which, r.cpuPerCamPct, r.rssPerCamMiB, r.kept, r.sent)
		if cfg.keepTemp {
			continue
		}
		if err := os.RemoveAll(rdir); err != nil {
			return results, err
		}
	}
	return results, nil
}

// measure runs one recorder against the simulator.
func measure(ctx context.Context, cfg config, t tools, which, dir, simAddr, ctl string, simPID int, names []string) (result, error) {
	r := result{recorder: which, cameras: len(names), window: cfg.measure}
	before, err := sentFrames(ctl)
	if err != nil {
		return r, err
	}
	var children []*child
	stopAll := func() {
		for _, c := range children {
			c.interrupt()
		}
		for _, c := range children {
			c.stop()
		}
	}
	defer stopAll()
	var count func() (uint64, error)
	var countWindow func(from, to time.Time) (uint64, error)
	switch which {
	case "ffmpeg":
		for _, name := range names {
			segDir := filepath.Join(dir, name)
			if err := os.MkdirAll(segDir, 0o755); err != nil {
				return r, err
			}
			c, err := startChild("ffmpeg "+name, segDir, t.ffmpeg, "-nostdin", "-v", "error",
				"-rtsp_transport", "tcp", "-timeout", "10000000", "-i", "rtsp://"+simAddr+"/"+name,
				"-c", "copy", "-f", "segment", "-segment_time", "10", "-segment_format", "mp4",
				"-reset_timestamps", "1", filepath.Join(segDir, "%05d.mp4"))
			if err != nil {
				return r, err
			}
			children = append(children, c)
		}
		count = func() (uint64, error) { return countSegments(ctx, t.ffprobe, dir, ".mp4") }
	case "mediamtx":
		paths := map[string]interop.MediaMTXPath{}
		for _, name := range names {
			paths[name] = interop.MediaMTXPath{Source: "rtsp://" + simAddr + "/" + name, SourceTransport: "tcp", Record: true}
		}
		srv, err := interop.StartMediaMTX(ctx, interop.ServerOptions{Binary: t.mediamtx, Dir: dir, Paths: paths})
		if err != nil {
			return r, err
		}
		defer srv.Close()
		children = append(children, &child{name: "mediamtx", pid: srv.PID(), stopFn: func() { _ = srv.Close() }})
		count = func() (uint64, error) { return countSegments(ctx, t.ffprobe, srv.RecordDir(), ".mp4") }
	case "nvrd":
		data := filepath.Join(dir, "store")
		// 2 MB/s per camera of 4 Mbit/s video over the run, and then some.
		size := int64(len(names)) * int64((cfg.warmup+cfg.measure+30*time.Second)/time.Second) * 600 << 10
		size = max(size, 1<<30)
		if _, err := ringstore.Format(ctx, data, ringstore.FormatOptions{Size: size, SlotSize: 64 << 20}); err != nil {
			return r, err
		}
		args := []string{"run", "--data", data, "--api", "", "--log-level", "warn"}
		if cfg.cpuProfile != "" {
			p, err := filepath.Abs(fmt.Sprintf("%s.%d", cfg.cpuProfile, len(names)))
			if err != nil {
				return r, err
			}
			args = append(args, "--cpuprofile", p)
		}
		for _, name := range names {
			args = append(args, "--camera", name+"=rtsp://"+simAddr+"/"+name)
		}
		c, err := startChild("nvrd run", dir, t.nvrd, args...)
		if err != nil {
			return r, err
		}
		children = append(children, c)
		count = func() (uint64, error) {
			n, gaps, err := countStore(ctx, data, names, time.Time{}, time.Time{})
			r.gaps = gaps
			return n, err
		}
		countWindow = func(from, to time.Time) (uint64, error) {
			n, _, err := countStore(ctx, data, names, from, to)
			return n, err
		}
	default:
		return r, fmt.Errorf("unknown recorder %q", which)
	}
	r.procs = len(children)
	pids := make([]int, len(children))
	for i, c := range children {
		pids[i] = c.pid
	}
	if err := sleep(ctx, cfg.warmup); err != nil {
		return r, err
	}
	for _, c := range children {
		if c.exited() {
			return r, fmt.Errorf("%s exited during warm-up:\n%s", c.name, c.output())
		}
	}
	cpu0, _, err := usage(pids)
	if err != nil {
		return r, err
	}
	sim0, err := cpuTime(simPID)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := sleep(ctx, cfg.measure); err != nil {
		return r, err
	}
	cpu1, mem, err := usage(pids)
	if err != nil {
		return r, err
	}
	sim1, err := cpuTime(simPID)
	if err != nil {
		return r, err
	}
	t1 := time.Now()
	wall := t1.Sub(t0).Seconds()
	n := float64(len(names))
	r.cpuPerCamPct = 100 * (cpu1 - cpu0).Seconds() / wall / n
	r.simCPUPerCamPct = 100 * (sim1 - sim0).Seconds() / wall / n
	r.rssPerCamMiB = float64(mem) / n / (1 << 20)
	// Frames captured just before the window's end are still on their way
	// (network, read batching, the queue): the recorder stops once they
	// had time to arrive, or they would count as lost.
	if err := sleep(ctx, windowDrain); err != nil {
		return r, err
	}
	stopAll()
	after, err := sentFrames(ctl)
	if err != nil {
		return r, err
	}
	for _, name := range names {
		r.sent += after[name] - before[name]
	}
	if r.kept, err = count(); err != nil {
		return r, err
	}
	if countWindow != nil {
		// The frames the simulator captured inside the window, by their
		// capture times: exact, where the counters read at the window's
		// ends are off by the requests' latency (a frame per camera under
		// load).
		for _, name := range names {
			n, err := capturedFrames(ctl, name, t0, t1)
			if err != nil {
				return r, err
			}
			r.windowSent += n
		}
		if r.windowKept, err = countWindow(t0, t1); err != nil {
			return r, err
		}
	}
	return r, nil
}

// windowDrain is how long a recorder runs on after the window's end.
const windowDrain = 2 * time.Second

// frameHistory is how many sent frames each simulated camera remembers:
// a whole recorder's run (25 fps) and a minute more, so the window's frames
// are still there when they are counted.
func frameHistory(cfg config) int {
	return int((cfg.warmup+cfg.measure+time.Minute)/time.Second) * 25
}

// capturedFrames returns how many video frames path name captured with
// from <= time < to (the simulator's frame history).
func capturedFrames(ctl, name string, from, to time.Time) (uint64, error) {
	q := url.Values{"since": {from.UTC().Format(time.RFC3339Nano)}, "until": {to.UTC().Format(time.RFC3339Nano)}}
	resp, err := http.Get(ctl + "/paths/" + name + "/frames?" + q.Encode())
	if err != nil {
		return 0, fmt.Errorf("camsim control: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("camsim control: frames of %s: %s", name, resp.Status)
	}
	var frames []struct {
		Time time.Time `json:"time"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&frames); err != nil {
		return 0, fmt.Errorf("camsim control: frames of %s: %w", name, err)
	}
	return uint64(len(frames)), nil
}

// sentFrames returns each path's video frames sent so far.
func sentFrames(ctl string) (map[string]uint64, error) {
	resp, err := http.Get(ctl + "/paths")
	if err != nil {
		return nil, fmt.Errorf("camsim control: %w", err)
	}
	defer resp.Body.Close()
	var stats []struct {
		Path   string `json:"path"`
		Frames uint64 `json:"frames"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		return nil, fmt.Errorf("camsim control: %w", err)
	}
	m := map[string]uint64{}
	for _, s := range stats {
		m[s.Path] = s.Frames
	}
	return m, nil
}

// countSegments counts the video packets of every segment under dir.
func countSegments(ctx context.Context, ffprobe, dir, ext string) (uint64, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ext) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(files)
	var total uint64
	for _, f := range files {
		out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
			"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", f).Output()
		if err != nil {
			logf("ffprobe %s: %v (segment not counted)", f, err)
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			logf("ffprobe %s: %q (segment not counted)", f, out)
			continue
		}
		total += n
	}
	return total, nil
}

// countStore counts the video frames of every camera's stream in the store
// with a time in [from, to), and the gaps inside, by cause; zero times mean
// all the stream holds.
func countStore(ctx context.Context, data string, names []string, from, to time.Time) (uint64, map[string]int, error) {
	st, err := ringstore.Open(ctx, data, ringstore.Options{})
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	infos, err := st.Streams()
	if err != nil {
		return 0, nil, err
	}
	gaps := map[string]int{}
	held := map[string]ringstore.StreamInfo{}
	for _, in := range infos {
		held[in.Name] = in
	}
	var total uint64
	for _, name := range names {
		in, ok := held[name]
		if !ok || in.First.IsZero() {
			continue
		}
		from, to := from, to
		if from.IsZero() {
			from, to = in.First, in.Last.Add(time.Second)
		}
		_, gs, err := st.Spans(name, from, to)
		if err != nil {
			return 0, nil, err
		}
		for _, g := range gs {
			gaps[g.Cause.String()]++
		}
		r, err := st.Frames(name, from, to)
		if err != nil {
			return 0, nil, err
		}
		for ctx.Err() == nil {
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return 0, nil, err
			}
			if f.Track == 0 && !f.Time.Before(from) && f.Time.Before(to) {
				total++
			}
		}
		r.Close()
	}
	return total, gaps, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering after %v: %v", url, timeout, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func printResults(w io.Writer, rs []result) {
	fmt.Fprintln(w, "\nrecorder   cams procs  CPU %/cam  RSS MiB/cam  frames kept/sent      lost/cam  sim CPU %/cam  window  in-window kept/sent")
	for _, r := range rs {
		lost := float64(int64(r.sent)-int64(r.kept)) / float64(r.cameras)
		win := "-"
		if r.windowSent > 0 {
			win = fmt.Sprintf("%d/%d", r.windowKept, r.windowSent)
		}
		fmt.Fprintf(w, "%-9s  %4d %5d  %9.3f  %11.2f  %8d/%-8d  %9.1f  %13.3f  %6v  %s\n",
			r.recorder, r.cameras, r.procs, r.cpuPerCamPct, r.rssPerCamMiB, r.kept, r.sent, lost, r.simCPUPerCamPct, r.window, win)
	}
	for _, r := range rs {
		if r.gaps != nil {
			fmt.Fprintf(w, "%s %d cameras: gaps in the store by cause: %v\n", r.recorder, r.cameras, r.gaps)
		}
	}
	for _, line := range ratios(rs) {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "(CPU in percent of one core per camera. Frames over the whole run: each connection starts recording at a keyframe, so up to 24 frames per camera are not kept by design. In-window: frames stored with a capture time inside the window against the frames the simulator captured inside it, exactly.)")
}

// ratios compares ours with MediaMTX at each camera count measured for both,
// against issue 3's targets.
func ratios(rs []result) []string {
	mtx := map[int]result{}
	for _, r := range rs {
		if r.recorder == "mediamtx" {
			mtx[r.cameras] = r
		}
	}
	var out []string
	for _, r := range rs {
		m, ok := mtx[r.cameras]
		if r.recorder != "nvrd" || !ok || m.cpuPerCamPct <= 0 || m.rssPerCamMiB <= 0 {
			continue
		}
		out = append(out, fmt.Sprintf("nvrd/MediaMTX at %d cameras: CPU %.2fx (target <= 0.5x), RSS %.2fx (target <= 1x), in-window frames lost %d",
			r.cameras, r.cpuPerCamPct/m.cpuPerCamPct, r.rssPerCamMiB/m.rssPerCamMiB, int64(r.windowSent)-int64(r.windowKept)))
	}
	return out
}
