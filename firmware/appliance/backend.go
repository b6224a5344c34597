package appliance

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/clip"
	"github.com/nvrfw/nvr/ringstore"
)

// backend shows the appliance through the HTTP API.
type backend struct{ a *App }

var _ api.Backend = (*backend)(nil)

func (b *backend) Authenticate(_ context.Context, token string) (api.Principal, error) {
	for t, holder := range b.a.opts.APITokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return api.Principal{Name: holder, Role: "admin"}, nil
		}
	}
	if b.a.cfg != nil {
		if tok, err := b.a.cfg.VerifyToken(token); err == nil {
			return api.Principal{Name: "api:" + tok.Name, Role: string(tok.Role)}, nil
		}
	}
	return api.Principal{}, api.ErrUnauthorized
}

func (b *backend) Status(context.Context) (api.Status, error) {
	a := b.a
	host, _ := os.Hostname()
	rec, recErr := a.current()
	var st ringstore.Stats
	h := Health{Failing: []string{fmt.Sprint(recErr)}}
	if recErr == nil {
		st = rec.store.Stats()
		h = a.healthOf(rec, st)
	}
	out := api.Status{
		Hostname: host, Version: a.opts.Version, Uptime: api.Duration(a.opts.Now().Sub(a.started)),
		Healthy: h.OK, Problems: append(append([]string{}, h.Failing...), h.Warnings...),
		Alarms:     []api.Alarm{},
		Components: []api.Component{},
	}
	if recErr == nil {
		out.Storage = api.StorageStatus{
			CapacityBytes: st.Capacity, UsedBytes: st.Used, WriteBytesSec: st.WriteRate, Oldest: oldestFootage(st),
			CommitP99: api.Duration(st.CommitLatencyP99), SuspectSlots: len(st.SuspectSlots),
		}
		if !out.Storage.Oldest.IsZero() {
			out.Storage.Retention = api.Duration(a.opts.Now().Sub(out.Storage.Oldest))
		}
		for _, cs := range rec.recorder.Statuses() {
			out.Cameras.Total++
			switch cs.State {
			case recorder.StateRecording:
				out.Cameras.Recording++
			case recorder.StateBackoff, recorder.StateError:
				out.Cameras.Offline++
			}
		}
	}
	for _, al := range a.hub.Alarms() {
		out.Alarms = append(out.Alarms, api.Alarm{Time: al.Time, Source: al.Source, Severity: string(al.Severity), Message: al.Message})
	}
	for _, c := range a.components() {
		out.Components = append(out.Components, api.Component{Name: c.Name, State: string(c.State), Restarts: c.Restarts, LastError: c.LastError})
	}
	if bs, ok := a.boardStatus(); ok {
		model := "test board"
		if a.opts.Board != nil {
			model = a.opts.Board.Model
		}
		out.Board = boardView(model, bs)
	}
	out.Time = a.timeView()
	return out, nil
}

func (b *backend) Cameras(context.Context) ([]api.Camera, error) {
	out := []api.Camera{}
	rec, err := b.a.current()
	if err != nil {
		return nil, err
	}
	for _, cs := range rec.recorder.Statuses() {
		out = append(out, cameraView(cs))
	}
	return out, nil
}

func cameraView(cs recorder.Status) api.Camera {
	c := api.Camera{
		Name: cs.Name, URL: cs.URL, State: cs.State.String(), LastError: cs.LastError,
		FPS: cs.FPS, BitrateBPS: cs.Bitrate, LastFrame: cs.LastFrame, Reconnects: int(cs.Reconnects),
		FramesRecorded: int64(cs.FramesRecorded), FramesDropped: int64(cs.FramesDropped),
	}
	for _, t := range cs.Tracks {
		if t.Codec.IsVideo() {
			c.Codec, c.Width, c.Height = t.Codec.String(), t.Width, t.Height
		} else if c.Audio == "" {
			c.Audio = t.Codec.String()
		}
	}
	return c
}

// knownStream reports whether name is a camera being recorded or a stream
// the store holds footage of.
func knownStream(rec *recording, name string) bool {
	if _, ok := rec.recorder.Status(name); ok {
		return true
	}
	streams, err := rec.store.Streams()
	if err != nil {
		return false
	}
	for _, s := range streams {
		if _, _, backfill := ringstore.SplitBackfillName(s.Name); !backfill && s.Name == name {
			return true
		}
	}
	return false
}

func (b *backend) Recordings(_ context.Context, camera string, from, to time.Time) (api.Recordings, error) {
	rec, err := b.a.current()
	if err != nil {
		return api.Recordings{}, err
	}
	if !knownStream(rec, camera) {
		return api.Recordings{}, fmt.Errorf("camera %q: %w", camera, api.ErrNotFound)
	}
	// Merged with the camera's backfill streams (footage the pair's other
	// node recorded of a window this one also holds): one camera, whole
	// history.
	spans, gaps, err := rec.store.MergedSpans(camera, from, to)
	if err != nil {
		return api.Recordings{}, fmt.Errorf("search recordings of %s: %w", camera, err)
	}
	out := api.Recordings{Camera: camera, From: from, To: to, Spans: []api.Span{}, Gaps: []api.Gap{}}
	for _, s := range spans {
		out.Spans = append(out.Spans, api.Span{Start: s.Start, End: s.End})
	}
	for _, g := range gaps {
		out.Gaps = append(out.Gaps, api.Gap{Start: g.Start, End: g.End, Cause: g.Cause.String()})
	}
	if g, ok := ongoingGap(rec, camera, spans, from, to, b.a.opts.Now()); ok {
		out.Gaps = append(out.Gaps, g)
	}
	return out, nil
}

// ongoingGap is the gap a camera that is down right now leaves at the end
// of a search: the store only records a gap when footage resumes, and a
// VMS asking about the last hour of a camera that died must see that it
// has none, and why, rather than a span that merely ends. Cameras this
// node does not record (a standby's, removed ones) have no ongoing gap.
func ongoingGap(rec *recording, camera string, spans []ringstore.Span, from, to, now time.Time) (api.Gap, bool) {
	cs, ok := rec.recorder.Status(camera)
	if !ok {
		return api.Gap{}, false
	}
	switch cs.State {
	case recorder.StateConnecting, recorder.StateBackoff, recorder.StateError:
	default:
		return api.Gap{}, false
	}
	start := from
	if n := len(spans); n > 0 {
		start = spans[n-1].End
	}
	if !cs.LastFrame.IsZero() && cs.LastFrame.After(start) {
		start = cs.LastFrame
	}
	end := to
	if now.Before(end) {
		end = now
	}
	if end.Sub(start) < ongoingGapMin {
		return api.Gap{}, false
	}
	return api.Gap{Start: start, End: end, Cause: ringstore.GapCameraOffline.String(), Ongoing: true}, true
}

// ongoingGapMin keeps a camera in its first seconds of reconnecting from
// showing a gap shorter than a GOP.
const ongoingGapMin = 2 * time.Second

func (b *backend) Export(ctx context.Context, camera string, from, to time.Time) (api.Clip, error) {
	rec, err := b.a.current()
	if err != nil {
		return nil, err
	}
	if !knownStream(rec, camera) {
		return nil, fmt.Errorf("camera %q: %w", camera, api.ErrNotFound)
	}
	plan, err := rec.clips.Prepare(ctx, clip.SourceFunc(rec.store.MergedFrames), clip.Options{Stream: camera, From: from, To: to})
	if errors.Is(err, clip.ErrNoFootage) {
		return nil, fmt.Errorf("no footage of %s in that range: %w", camera, api.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("prepare export of %s: %w", camera, err)
	}
	return exportClip{plan}, nil
}

// exportClip serves a prepared clip.
type exportClip struct{ p *clip.Plan }

func (c exportClip) Name() string {
	return fmt.Sprintf("%s-%s.mp4", c.p.Stream, c.p.Start.UTC().Format("20060102T150405Z"))
}
func (c exportClip) ModTime() time.Time { return c.p.End }
func (c exportClip) Size() int64        { return c.p.Size() }
func (c exportClip) WriteRange(ctx context.Context, w io.Writer, off, n int64) error {
	return c.p.WriteRange(ctx, w, off, n)
}

func (b *backend) Subscribe(ctx context.Context) <-chan api.Event {
	in := b.a.hub.Subscribe(ctx)
	out := make(chan api.Event)
	go func() {
		defer close(out)
		for ev := range in {
			select {
			case out <- eventView(ev):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func eventView(ev events.Event) api.Event {
	return api.Event{ID: ev.ID, Time: ev.Time, Kind: ev.Kind, Severity: string(ev.Severity), Source: ev.Source, Message: ev.Message, Data: ev.Data}
}

func (b *backend) Healthy(context.Context) (bool, []string) {
	h := b.a.Health()
	return h.OK, h.Failing
}

func boardView(model string, bs board.Status) *api.BoardStatus {
	out := &api.BoardStatus{Model: model, WatchdogReset: bs.WatchdogReset, PSUs: []api.PSUStatus{}, Bays: []api.BayStatus{}, Arrays: []api.ArrayStatus{}}
	for _, p := range bs.PSUs {
		faults := p.Faults
		if faults == nil {
			faults = []string{}
		}
		out.PSUs = append(out.PSUs, api.PSUStatus{Name: p.Name, Present: p.Present, Faults: faults,
			InputV: p.Reading.VIn, OutputW: p.Reading.POut, TempC: p.Reading.Temperature, Error: p.Err})
	}
	for _, b := range bs.Bays {
		out.Bays = append(out.Bays, api.BayStatus{Name: b.Name, Present: b.Present, Fault: b.Fault, Locate: b.Locate})
	}
	for _, ar := range bs.Arrays {
		v := api.ArrayStatus{Name: ar.Name, Recording: ar.Recording, Health: ar.Health.String(), Progress: ar.Progress, Error: ar.Err,
			Members: []api.DriveStatus{}}
		for _, m := range ar.Array.Members {
			state := m.State
			if state == nil {
				state = []string{}
			}
			v.Members = append(v.Members, api.DriveStatus{Device: m.Device, Slot: m.Slot, State: state, ReadErrors: m.ReadErrors, IOErrors: m.IOErrors})
		}
		out.Arrays = append(out.Arrays, v)
	}
	return out
}
