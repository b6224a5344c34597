package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nvrfw/nvr/recorder/clip"
	"github.com/nvrfw/nvr/ringstore"
)

func exportCommand() *Command {
	return &Command{
		Name:    "export",
		Summary: "write a time range of one camera's recording as an MP4 file",
		Usage: `Writes [--from, --to) of one camera's recorded stream as one MP4 file that
ffmpeg and common players open (H.264/H.265 video, AAC/Opus audio; G.711
audio is left out with a note). The clip starts at the keyframe at or before
--from. Gaps inside the range keep real time: the last picture before a gap
stays on screen until footage resumes.

Times are RFC 3339 (2026-11-25T12:00:00Z, 2026-11-25T13:00:00+01:00), "now",
or relative to now: -10m, -1h30m, -90s. Examples:

  nvrd export --data /var/nvr --camera cam1 --from -10m --to now -o last10.mp4
  nvrd export --data /var/nvr --camera cam1 \
      --from 2026-11-25T12:00:00Z --to 2026-11-25T12:30:00Z -o noon.mp4
  nvrd export --data /var/nvr --camera cam1 --from -1h --to -50m -o - | ffplay -

When the camera's codec parameters change inside the range (a new resolution,
say), the clip ends at the change and the command says where the rest starts;
with --split the rest follows in FILE-2.mp4, FILE-3.mp4, ... (the same for the
4 GiB limit of a clip).
The store is opened for the export: stop the recorder on the same volume first
(the live appliance serves exports over its API instead).

Exit status: 0 written, 1 failed (no footage in the range: the nearest
recorded spans are listed), 2 bad command line.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			data := fs.String("data", "", "the store's volume `directory` (required)")
			index := fs.String("index", "", "the store's index `file` (default DIR/index.db)")
			camera := fs.String("camera", "", "the camera stream `name` (required)")
			from := fs.String("from", "", "start `time` (required): RFC 3339, now, or -DURATION")
			to := fs.String("to", "now", "end `time`: RFC 3339, now, or -DURATION")
			out := fs.String("o", "", "output `file` (required); - writes to standard output")
			split := fs.Bool("split", false, "when the clip must end early (codec parameters changed, 4 GiB), continue in FILE-2.mp4, FILE-3.mp4, ...")
			return func(ctx context.Context, env Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("export takes no arguments (got %q)", args)
				}
				for _, req := range []struct{ name, v string }{{"--data", *data}, {"--camera", *camera}, {"--from", *from}, {"-o", *out}} {
					if req.v == "" {
						return usageErrorf("export needs %s (see nvrd export --help)", req.name)
					}
				}
				now := time.Now()
				f, err := parseTimeArg(*from, now)
				if err != nil {
					return usageErrorf("--from: %v", err)
				}
				t, err := parseTimeArg(*to, now)
				if err != nil {
					return usageErrorf("--to: %v", err)
				}
				if !f.Before(t) {
					return usageErrorf("--from (%s) must be before --to (%s)", f.Format(time.RFC3339), t.Format(time.RFC3339))
				}
				if *out == "-" && stdoutIsTerminal(env.Stdout) {
					return usageErrorf("-o - would write the MP4 to the terminal; redirect it or give a file")
				}
				if *split && *out == "-" {
					return usageErrorf("--split needs -o FILE, not standard output")
				}
				return runExport(ctx, env, exportArgs{data: *data, index: *index, camera: *camera, from: f, to: t, out: *out, split: *split})
			}
		},
	}
}

type exportArgs struct {
	data, index, camera string
	from, to            time.Time
	out                 string
	split               bool
}

// parseTimeArg reads a command-line time: RFC 3339, "now", or a negative
// duration relative to now ("-10m").
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a duration like -10m or -1h30m", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2026-11-25T12:00:00Z), now, or -DURATION", s)
	}
	return t, nil
}

func runExport(ctx context.Context, env Env, a exportArgs) error {
	st, err := ringstore.Open(ctx, a.data, ringstore.Options{IndexPath: a.index})
	if err != nil {
		return fmt.Errorf("open store %s (while nvrd records on it, export over its API instead): %w", a.data, err)
	}
	defer st.Close()
	src := clip.SourceFunc(st.Frames)
	from := a.from
	for part := 1; ; part++ {
		out := a.out
		if part > 1 {
			out = partName(a.out, part)
		}
		bar := newProgressBar(env.Stderr, stdoutIsTerminal(env.Stderr), time.Now)
		opts := clip.Options{Stream: a.camera, From: from, To: a.to, Progress: bar.update}
		plan, err := clip.Prepare(ctx, src, opts)
		if err != nil {
			bar.done()
			if errors.Is(err, clip.ErrNoFootage) && part == 1 {
				return noFootage(st, a, err)
			}
			return fmt.Errorf("export %s: %w", a.camera, err)
		}
		err = writeClip(ctx, env, plan, out)
		bar.done()
		if err != nil {
			return fmt.Errorf("export %s to %s: %w", a.camera, out, err)
		}
		reportClip(env.Stderr, plan, out, a.split)
		if plan.CutReason == nil && a.to.Sub(plan.End) > time.Second {
			fmt.Fprintf(env.Stderr, "note: footage ends at %s, before --to\n", plan.End.UTC().Format(time.RFC3339))
		}
		if part == 1 && plan.Start.Sub(a.from) > time.Second {
			fmt.Fprintf(env.Stderr, "note: footage starts at %s, after --from\n", plan.Start.UTC().Format(time.RFC3339))
		}
		if plan.CutReason == nil || !a.split || part >= maxParts {
			return nil
		}
		from = plan.CutAt
	}
}

// maxParts bounds --split.
const maxParts = 1000

// partName names part n of a split export: clip.mp4 -> clip-2.mp4.
func partName(out string, n int) string {
	ext := filepath.Ext(out)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(out, ext), n, ext)
}

// writeClip writes the clip to out ("-": stdout) through a temporary file
// renamed into place once complete, so a failed export leaves no half file.
func writeClip(ctx context.Context, env Env, plan *clip.Plan, out string) error {
	if out == "-" {
		_, err := plan.Write(ctx, env.Stdout)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.partial")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: a no-op error
	if _, err := plan.Write(ctx, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// reportClip tells the operator what was written.
func reportClip(w io.Writer, p *clip.Plan, out string, split bool) {
	name := out
	if out == "-" {
		name = "standard output"
	}
	fmt.Fprintf(w, "wrote %s: %s, %s .. %s (%s)\n", name, formatBytes(p.Size()),
		p.Start.UTC().Format(time.RFC3339), p.End.UTC().Format(time.RFC3339), p.End.Sub(p.Start).Round(time.Millisecond))
	for _, t := range p.Tracks {
		fmt.Fprintf(w, "  track %d: %v, %d frames\n", t.Track.ID, t.Track.Codec, t.Samples)
	}
	for _, o := range p.Omitted {
		fmt.Fprintf(w, "  left out track %d (%v): %s\n", o.Track.ID, o.Track.Codec, o.Reason)
	}
	for _, g := range p.Gaps {
		fmt.Fprintf(w, "  gap %s .. %s (%s): real time kept\n", g.Start.UTC().Format(time.RFC3339), g.End.UTC().Format(time.RFC3339), g.Cause)
	}
	switch {
	case p.CutReason != nil && split:
		fmt.Fprintf(w, "note: the clip ends at %s (%s); the rest follows in the next part\n",
			p.CutAt.UTC().Format(time.RFC3339Nano), cutReason(p.CutReason))
	case p.CutReason != nil:
		fmt.Fprintf(w, "note: the clip ends early, at %s (%s)\n  export the rest with --from %s, or run again with --split\n",
			p.CutAt.UTC().Format(time.RFC3339Nano), cutReason(p.CutReason), p.CutAt.UTC().Format(time.RFC3339Nano))
	}
}

// cutReason says in words why a clip ended early.
func cutReason(err error) string {
	switch {
	case errors.Is(err, clip.ErrParamsChanged):
		return "the camera's codec parameters changed there"
	case errors.Is(err, clip.ErrSizeLimit):
		return "one clip holds at most 4 GiB and 12 h"
	}
	return err.Error()
}

// noFootage explains an empty range with the recorded spans nearest to it.
func noFootage(st *ringstore.Store, a exportArgs, cause error) error {
	streams, err := st.Streams()
	if err != nil {
		return fmt.Errorf("%w (and listing streams failed: %v)", cause, err)
	}
	var info *ringstore.StreamInfo
	var names []string
	for i := range streams {
		names = append(names, streams[i].Name)
		if streams[i].Name == a.camera {
			info = &streams[i]
		}
	}
	if info == nil {
		return fmt.Errorf("no recording of camera %q in %s (recorded: %s)", a.camera, a.data, strings.Join(names, ", "))
	}
	spans, _, err := st.Spans(a.camera, info.First, info.Last.Add(time.Nanosecond))
	if err != nil {
		return fmt.Errorf("%w (and listing spans failed: %v)", cause, err)
	}
	return fmt.Errorf("no footage of %s between %s and %s; nearest recorded: %s", a.camera,
		a.from.UTC().Format(time.RFC3339), a.to.UTC().Format(time.RFC3339), nearestSpans(spans, a.from, a.to))
}

// nearestSpans describes the last span ending before from and the first
// starting after to.
func nearestSpans(spans []ringstore.Span, from, to time.Time) string {
	var before, after *ringstore.Span
	for i := range spans {
		s := &spans[i]
		if !s.End.After(from) && (before == nil || s.End.After(before.End)) {
			before = s
		}
		if !s.Start.Before(to) && (after == nil || s.Start.Before(after.Start)) {
			after = s
		}
	}
	var parts []string
	span := func(s *ringstore.Span) string {
		return s.Start.UTC().Format(time.RFC3339) + " .. " + s.End.UTC().Format(time.RFC3339)
	}
	if before != nil {
		parts = append(parts, fmt.Sprintf("%s (ends %s before --from)", span(before), from.Sub(before.End).Round(time.Second)))
	}
	if after != nil {
		parts = append(parts, fmt.Sprintf("%s (starts %s after --to)", span(after), after.Start.Sub(to).Round(time.Second)))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progressBar draws an export's progress on a terminal (redrawn in place,
// at most 10 times a second) or as occasional lines (every 10 s, or a
// quarter of the way) on anything else.
type progressBar struct {
	w      io.Writer
	tty    bool
	now    func() time.Time
	last   time.Time
	phase  clip.Phase
	shown  int // last percentage printed as a line
	drawn  bool
	begun  bool
	wStart time.Time
}

func newProgressBar(w io.Writer, tty bool, now func() time.Time) *progressBar {
	return &progressBar{w: w, tty: tty, now: now, shown: -1}
}

func (b *progressBar) update(p clip.Progress) {
	now := b.now()
	if !b.begun || p.Phase != b.phase {
		b.begun, b.phase, b.shown = true, p.Phase, -1
		if p.Phase == clip.PhaseWrite {
			b.wStart = now
		}
	}
	pct := 0
	if p.Total > 0 {
		pct = int(p.Done * 100 / p.Total)
	}
	if b.tty {
		if now.Sub(b.last) < 100*time.Millisecond && pct < 100 {
			return
		}
		b.last = now
		fmt.Fprintf(b.w, "\r\033[K%s", b.line(p, pct, now))
		b.drawn = true
		return
	}
	if b.shown >= 0 && pct/25 == b.shown/25 && now.Sub(b.last) < 10*time.Second {
		return
	}
	b.last, b.shown = now, pct
	fmt.Fprintln(b.w, b.line(p, pct, now))
}

func (b *progressBar) line(p clip.Progress, pct int, now time.Time) string {
	const width = 30
	fill := strings.Repeat("#", pct*width/100) + strings.Repeat(" ", width-pct*width/100)
	if p.Phase == clip.PhaseScan {
		return fmt.Sprintf("scanning [%s] %3d%%", fill, pct)
	}
	rate := ""
	if el := now.Sub(b.wStart).Seconds(); el > 0.5 {
		rate = fmt.Sprintf(" %s/s", formatBytes(int64(float64(p.Done)/el)))
	}
	return fmt.Sprintf("writing  [%s] %3d%% %s of %s%s", fill, pct, formatBytes(p.Done), formatBytes(p.Total), rate)
}

// done ends an in-place bar with a newline.
func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
