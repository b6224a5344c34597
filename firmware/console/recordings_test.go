package console

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// recSystem is a fake system that records.
type recSystem struct {
	*fakeSystem
	from, to time.Time
}

func (r *recSystem) Recordings(_ context.Context, camera string, from, to time.Time) (Recordings, error) {
	if camera != "lobby" {
		return Recordings{}, errors.New("camera not found")
	}
	r.from, r.to = from, to
	t0 := to.Add(-2 * time.Hour)
	return Recordings{Camera: camera, From: from, To: to,
		Spans: []RecordingSpan{{Start: t0, End: t0.Add(time.Hour)}, {Start: t0.Add(time.Hour + 5*time.Minute), End: to.Add(-time.Minute)}},
		Gaps: []RecordingGap{{Start: from, End: t0, Cause: "unknown"}, {Start: t0.Add(time.Hour), End: t0.Add(time.Hour + 5*time.Minute), Cause: "camera offline"},
			{Start: to.Add(-time.Minute), End: to, Cause: "camera offline", Ongoing: true}},
	}, nil
}

func TestShowRecordings(t *testing.T) {
	e := newCmdEnv(t)
	sys := &recSystem{fakeSystem: e.sys}
	e.c.opts.System = sys
	out := e.exec(t, "eve", "show recordings lobby --last 6h")
	if d := sys.to.Sub(sys.from); d != 6*time.Hour {
		t.Errorf("asked for %v, want 6h", d)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "lobby, ") ||
		!strings.Contains(lines[1], "4h0m0s      GAP unknown") || !strings.Contains(lines[2], "1h0m0s      recorded") ||
		!strings.Contains(lines[3], "5m0s        GAP camera offline") || !strings.Contains(lines[5], "GAP camera offline (ongoing)") ||
		!strings.Contains(lines[6], "recorded 1h54m0s of 6h0m0s (31.7 %), 3 gaps") {
		t.Errorf("show recordings:\n%s", out)
	}
	var r Recordings
	if err := json.Unmarshal([]byte(e.exec(t, "eve", "show recordings lobby --json")), &r); err != nil || len(r.Spans) != 2 || !r.Gaps[2].Ongoing {
		t.Errorf("--json: %+v %v", r, err)
	}
	if d := sys.to.Sub(sys.from); d != 24*time.Hour {
		t.Errorf("default range %v, want 24h", d)
	}
	for line, want := range map[string]string{
		"show recordings lobby --last 8d":  "at most 7d",
		"show recordings lobby --last -1h": "at most 7d",
		"show recordings lobby --last 2x":  "at most 7d",
		"show recordings":                  "one camera",
		"show recordings nope":             "camera not found",
	} {
		if out := e.exec(t, "eve", line); !strings.Contains(out, want) {
			t.Errorf("%s: %q, want it to say %q", line, out, want)
		}
	}
	if out := e.exec(t, "eve", "show recordings lobby --last 2d"); !strings.Contains(out, "of 48h0m0s") {
		t.Errorf("--last 2d: %s", out)
	}
}
