package pairtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/rig"
	"github.com/nvrfw/nvr/ringstore"
)

// pkt is one video packet of an exported MP4.
type pkt struct {
	pts  float64 // seconds from the clip's start
	size int
	key  bool
}

func same(a, b pkt) bool { return a.size == b.size && math.Abs(a.pts-b.pts) < 0.0005 }

// requireFFprobe fails under CI=true and skips otherwise when ffprobe is
// missing.
func requireFFprobe(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffprobe is missing (install ffmpeg)")
		}
		t.Skip("ffprobe is missing (install ffmpeg)")
	}
}

// videoPackets lists an MP4's video packets in decoding order.
func videoPackets(t *testing.T, path string) []pkt {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,size,flags",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var ps []pkt
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 3 {
			continue
		}
		pts, err1 := strconv.ParseFloat(f[0], 64)
		size, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		ps = append(ps, pkt{pts: pts, size: size, key: strings.HasPrefix(f[2], "K")})
	}
	return ps // decoding order: without B-frames, time order unless recorded twice
}

// exportAPI exports cam over [from, now] from the API at base (in the
// client namespace) into a file and returns its video packets.
func (p *pair) exportAPI(base, cam string, from time.Time, tag string) []pkt {
	p.t.Helper()
	path := filepath.Join(p.dir, fmt.Sprintf("%s-%s.mp4", tag, cam))
	url := fmt.Sprintf("%s/api/v1/export?camera=%s&from=%s&to=now", base, cam, from.UTC().Format(time.RFC3339Nano))
	if code, body := p.request("GET", url, path); code != 200 {
		p.t.Fatalf("export %s from %s: %d %s", cam, base, code, body)
	}
	return videoPackets(p.t, path)
}

// exportOffline exports cam over [from, to] from a stopped node's volume
// with nvrd export.
func (p *pair) exportOffline(n, cam string, from, to time.Time) []pkt {
	p.t.Helper()
	nd := p.nodes[n]
	path := filepath.Join(p.dir, fmt.Sprintf("offline-%s-%s.mp4", n, cam))
	out, err := exec.Command(nd.bin, "export", "--data", nd.store(), "--camera", cam, "--from", from.UTC().Format(time.RFC3339Nano),
		"--to", to.UTC().Format(time.RFC3339Nano), "-o", path).CombinedOutput()
	if err != nil {
		p.t.Fatalf("nvrd export %s of %s: %v\n%s", cam, n, err, out)
	}
	return videoPackets(p.t, path)
}

func apiBase(target string) string {
	host := rig.VIP
	if target != "vip" {
		host = rig.LANAddr[target]
	}
	return "https://" + host + ":" + apiPort
}

// storeFrameTimes reads a stopped node's video frame times of cam over
// [from, to] straight from its volume (absolute times, for the watermark
// checks the MP4's relative times cannot do).
func storeFrameTimes(t *testing.T, dir, cam string, from, to time.Time) []ringstore.ReadFrame {
	t.Helper()
	st, err := ringstore.Open(context.Background(), dir, ringstore.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer st.Close()
	r, err := st.MergedFrames(cam, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var video uint8 = 255
	var out []ringstore.ReadFrame
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range f.Tracks {
			if tr.Codec.IsVideo() {
				video = tr.ID
			}
		}
		if f.Track == video {
			f.Data = nil
			out = append(out, f)
		}
	}
}

// maxDelta returns the largest time between consecutive packets, and the
// index of the packet after it.
func maxDelta(ps []pkt) (float64, int) {
	best, at := 0.0, 0
	for i := 1; i < len(ps); i++ {
		if d := ps[i].pts - ps[i-1].pts; d > best {
			best, at = d, i
		}
	}
	return best, at
}

// duplicates counts packets at the same time as the one before (a window
// recorded twice would show as such, or as time going backwards).
func duplicates(ps []pkt) int {
	n := 0
	for i := 1; i < len(ps); i++ {
		if ps[i].pts-ps[i-1].pts < 0.0005 {
			n++
		}
	}
	return n
}

func stats(vs []float64) (lo, med, hi float64) {
	if len(vs) == 0 {
		return 0, 0, 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}
