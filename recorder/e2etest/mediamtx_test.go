package e2etest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/interop"
)

// TestRecordMediaMTX records from an RTSP server nobody here wrote: MediaMTX
// (built from its module sources by interop.BuildMediaMTX; a build failure
// fails the test) with ffmpeg publishing a clip into it in real time. Each
// codec's stream is recorded twice at once, over TCP and over UDP, for 30 s,
// exported and checked like the simulator's: every video frame decodes, the
// frame count is that of 25 fps over the recorded span within one GOP,
// timestamps are monotonic, durations are within 1 %.
func TestRecordMediaMTX(t *testing.T) {
	t.Parallel()
	ffmpeg, ffprobe := tools(t)
	clips := clipDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel) // after the parallel subtests, which use ctx
	start := time.Now()
	bin, err := interop.BuildMediaMTX(ctx, interop.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MediaMTX %s: %s (%v)", interop.DefaultMediaMTXVersion, bin, time.Since(start).Round(time.Millisecond))
	for _, c := range []struct{ video, codec string }{{"h264", "h264"}, {"h265", "hevc"}} {
		t.Run(c.video, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, c.video+".mkv")
			if err := interop.MakeClip(ctx, ffmpeg, clips, c.video, true, src); err != nil {
				t.Fatal(err)
			}
			srv, err := interop.StartMediaMTX(ctx, interop.ServerOptions{
				Binary: bin, Dir: dir, Paths: map[string]interop.MediaMTXPath{"x": {}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := srv.Close(); err != nil {
					t.Error(err)
				}
			}()
			pub, err := interop.Publish(ffmpeg, src, srv.URL("x"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := pub.Close(); err != nil {
					t.Error(err)
				}
			}()
			if err := pub.WaitStarted(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
			cams := []recorder.Camera{
				{Name: "tcp", URL: srv.URL("x"), Transport: recorder.TransportTCP},
				{Name: "udp", URL: srv.URL("x"), Transport: recorder.TransportUDP},
			}
			rec := record(t, cams...)
			for _, p := range []error{pub.Err(), srv.Err()} {
				if p != nil {
					t.Fatal(p)
				}
			}
			for _, cam := range cams {
				t.Run(cam.Name, func(t *testing.T) {
					file, plan := export(t, rec, cam.Name)
					video := checkExport(t, ffprobe, file, c.codec, plan, rec.to)
					want := int(rec.to.Sub(plan.Start).Round(framePeriod) / framePeriod)
					t.Logf("%d video frames exported, %d expected at 25 fps from the clip's first keyframe to the window's end", len(video.sizes), want)
					if d := len(video.sizes) - want; d < -gop || d > gop {
						t.Errorf("%d video frames exported, want %d within one GOP (%d)", len(video.sizes), want, gop)
					}
				})
			}
		})
	}
}
