package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

// RecordingsSystem is what a System that records adds for "show
// recordings". The console type-asserts its System to it.
type RecordingsSystem interface {
	// Recordings returns camera's footage and gaps within [from, to).
	Recordings(ctx context.Context, camera string, from, to time.Time) (Recordings, error)
}

// Recordings is one camera's footage over a range.
type Recordings struct {
	Camera string          `json:"camera"`
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Spans  []RecordingSpan `json:"spans"`
	Gaps   []RecordingGap  `json:"gaps"`
}

// RecordingSpan is continuous footage.
type RecordingSpan struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// RecordingGap is a time without footage and why.
type RecordingGap struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Cause   string    `json:"cause"`
	Ongoing bool      `json:"ongoing,omitempty"`
}

// maxRecordingsRange bounds "show recordings --last".
const maxRecordingsRange = 7 * 24 * time.Hour

func recordingsShowCommand() *command {
	return &command{name: "recordings", args: "CAMERA [--last DURATION] [--json]",
		summary: "a camera's footage and gaps (with causes) over the last 24 h or DURATION",
		help: "DURATION is 90m, 6h, 2d (at most 7d). Gaps show why nothing was recorded:\n" +
			"camera offline, camera stalled, timestamp jump, frames dropped, evicted, ...",
		role: config.RoleViewer, json: true, flags: map[string]flagKind{"last": valueFlag}, run: runShowRecordings}
}

func runShowRecordings(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("give one camera name")
	}
	last := 24 * time.Hour
	if v, ok := a.get("last"); ok {
		d, err := parseSpan(v)
		if err != nil {
			return err
		}
		last = d
	}
	rs, ok := s.c.opts.System.(RecordingsSystem)
	if !ok {
		return errors.New("this system does not record")
	}
	to := s.c.opts.Clock.Now()
	r, err := rs.Recordings(ctx, a.pos[0], to.Add(-last), to)
	if err != nil {
		return fmt.Errorf("recordings of %s: %w", sanitize(a.pos[0]), err)
	}
	if a.has("json") {
		return s.printJSON(r)
	}
	s.c.printf("%s", s.formatRecordings(r))
	return nil
}

// parseSpan reads a --last value: a Go duration (90m, 6h) or days (2d),
// positive and at most maxRecordingsRange.
func parseSpan(v string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var k int
		if _, err = fmt.Sscanf(n, "%d", &k); err == nil && fmt.Sprint(k) == n {
			d = time.Duration(k) * 24 * time.Hour
		} else {
			err = errors.New("bad day count")
		}
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d <= 0 || d > maxRecordingsRange {
		return 0, usagef("%q is not a span of at most 7d (90m, 6h, 2d)", sanitize(v))
	}
	return d, nil
}

// formatRecordings lists spans and gaps in time order, then a summary.
func (s *session) formatRecordings(r Recordings) string {
	type row struct {
		start, end time.Time
		what       string
	}
	var rows []row
	var recorded time.Duration
	for _, sp := range r.Spans {
		rows = append(rows, row{sp.Start, sp.End, "recorded"})
		recorded += sp.End.Sub(sp.Start)
	}
	for _, g := range r.Gaps {
		what := "GAP " + sanitize(g.Cause)
		if g.Ongoing {
			what += " (ongoing)"
		}
		rows = append(rows, row{g.Start, g.End, what})
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.start.Compare(b.start) })
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s .. %s:\n", sanitize(r.Camera), s.localTime(r.From), s.localTime(r.To))
	if len(rows) == 0 {
		b.WriteString("  no footage\n")
	}
	for _, x := range rows {
		fmt.Fprintf(&b, "  %s .. %s  %-10s  %s\n", s.localTime(x.start), s.localTime(x.end),
			x.end.Sub(x.start).Round(time.Second), x.what)
	}
	total := r.To.Sub(r.From)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(recorded) / float64(total)
	}
	fmt.Fprintf(&b, "recorded %s of %s (%.1f %%), %d gaps\n", recorded.Round(time.Second), total.Round(time.Second), pct, len(r.Gaps))
	return b.String()
}
