package appliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// probeWriter takes a probing session's output: it keeps the track table and
// signals the first keyframe, and stores nothing.
type probeWriter struct {
	mu     sync.Mutex
	tracks []ringstore.Track
	gotKey chan struct{}
	once   sync.Once
}

func (p *probeWriter) SetTracks(t []ringstore.Track) error {
	p.mu.Lock()
	p.tracks = t
	p.mu.Unlock()
	return nil
}

func (p *probeWriter) Append(f ringstore.Frame) (uint64, error) {
	if f.Key {
		p.once.Do(func() { close(p.gotKey) })
	}
	return 0, nil
}

func (p *probeWriter) MarkGap(ringstore.GapCause, time.Time) {}

// probeCamera connects to cam as the recorder would and describes what it
// sends once a keyframe arrives ("H264 1920x1080 25 fps, AAC"), without
// storing anything. It gives up after timeout with the session's last error.
func probeCamera(ctx context.Context, cam recorder.Camera, opts recorder.Options, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := &probeWriter{gotKey: make(chan struct{})}
	sess, err := recorder.NewSession(cam, w, opts)
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-w.gotKey:
	case <-ctx.Done():
		st := sess.Status()
		if st.LastError != "" {
			return "", errors.New(st.LastError)
		}
		return "", fmt.Errorf("no keyframe from %s within %s", cam.RedactedURL(), timeout)
	}
	st := sess.Status()
	var parts []string
	for _, t := range st.Tracks {
		if t.Codec.IsVideo() {
			s := fmt.Sprintf("%s %dx%d", t.Codec, t.Width, t.Height)
			if t.FPS > 0 {
				s += fmt.Sprintf(" %g fps", t.FPS)
			}
			parts = append(parts, s)
		} else {
			parts = append(parts, fmt.Sprintf("%s %d Hz", t.Codec, t.ClockRate))
		}
	}
	if len(parts) == 0 {
		return "connected, but no recordable track", nil
	}
	return strings.Join(parts, ", "), nil
}
