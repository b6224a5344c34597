package appliance

import (
	"context"
	"time"

	"github.com/nvrfw/nvr/firmware/console"
)

// Recordings gives the console a camera's footage and gaps, from the same
// search the API serves (merged with the pair's backfill, with the ongoing
// gap of a camera that is down now).
func (s *system) Recordings(ctx context.Context, camera string, from, to time.Time) (console.Recordings, error) {
	r, err := (&backend{a: s.a}).Recordings(ctx, camera, from, to)
	if err != nil {
		return console.Recordings{}, err
	}
	out := console.Recordings{Camera: r.Camera, From: r.From, To: r.To,
		Spans: make([]console.RecordingSpan, 0, len(r.Spans)), Gaps: make([]console.RecordingGap, 0, len(r.Gaps))}
	for _, sp := range r.Spans {
		out.Spans = append(out.Spans, console.RecordingSpan{Start: sp.Start, End: sp.End})
	}
	for _, g := range r.Gaps {
		out.Gaps = append(out.Gaps, console.RecordingGap{Start: g.Start, End: g.End, Cause: g.Cause, Ongoing: g.Ongoing})
	}
	return out, nil
}
