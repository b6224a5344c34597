package interop

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// MakeClip muxes the committed raw test clips (testdata/clips: video at 25
// fps, Annex B, and aac.aac) into a Matroska file at out that ffmpeg can
// loop and publish; video is "h264" or "h265". With audio false the file
// holds only video. Streams are copied, not re-encoded.
func MakeClip(ctx context.Context, ffmpeg, clipDir, video string, audio bool, out string) error {
	var in, format string
	switch video {
	case "h264":
		in, format = "h264.h264", "h264"
	case "h265":
		in, format = "h265.h265", "hevc"
	default:
		return fmt.Errorf("interop: clip video %q: want h264 or h265", video)
	}
	args := []string{"-nostdin", "-v", "error", "-y", "-f", format, "-r", "25", "-i", filepath.Join(clipDir, in)}
	if audio {
		args = append(args, "-i", filepath.Join(clipDir, "aac.aac"), "-map", "0:v", "-map", "1:a", "-shortest")
	}
	args = append(args, "-c", "copy", out)
	if b, err := exec.CommandContext(ctx, ffmpeg, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("interop: ffmpeg making %s: %w\n%s", out, err, b)
	}
	return nil
}

// Publisher is an ffmpeg process publishing a file, looped forever in real
// time with its streams copied, to an RTSP server.
type Publisher struct {
	proc *process
}

// Publish starts `ffmpeg -re -stream_loop -1 -i file -c copy -f rtsp URL`
// over TCP. Close stops it.
func Publish(ffmpeg, file, url string) (*Publisher, error) {
	cmd := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", file,
		"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", url)
	p, err := startProcess("ffmpeg publisher", cmd)
	if err != nil {
		return nil, err
	}
	return &Publisher{proc: p}, nil
}

// Err returns an error wrapping ErrExited, with ffmpeg's output, when the
// publisher has ended on its own; else nil.
func (p *Publisher) Err() error { return p.proc.exited() }

// Output returns the tail of ffmpeg's output.
func (p *Publisher) Output() string { return p.proc.Output() }

// Close stops ffmpeg and waits for it; it is idempotent.
func (p *Publisher) Close() error { return p.proc.close() }

// WaitStarted waits up to timeout for the publisher to survive its start
// (ffmpeg exits at once when the server refuses it).
func (p *Publisher) WaitStarted(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.proc.done:
		return p.proc.exited()
	case <-t.C:
		return nil
	}
}
