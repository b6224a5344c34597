package console

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

const timeFormat = "2006-01-02 15:04:05 MST"

func runShowStatus(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	st, err := s.c.opts.System.Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if a.has("json") {
		return s.printJSON(st)
	}
	counts := map[string]int{}
	for _, c := range st.Cameras {
		counts[c.State]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cameras: %d recording, %d connecting, %d failed, %d disabled (of %d)\n", counts[StateRecording],
		counts[StateConnecting], counts[StateFailed], counts[StateDisabled], len(st.Cameras))
	if len(st.Cameras) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, c := range st.Cameras {
			since := "-"
			if !c.Since.IsZero() {
				since = s.localTime(c.Since)
			}
			fmt.Fprintf(tw, "  %s\t%s\tsince %s\t%s\n", sanitize(c.Name), sanitize(c.State), since, sanitize(c.Detail))
		}
		tw.Flush()
	}
	fmt.Fprintf(&b, "retention held: %s\n", formatHeld(st.RetentionHeld))
	if len(st.Alarms) == 0 {
		b.WriteString("alarms: none\n")
	} else {
		fmt.Fprintf(&b, "alarms: %d\n", len(st.Alarms))
		for _, al := range st.Alarms {
			fmt.Fprintf(&b, "  %s %s: %s (since %s)\n", strings.ToUpper(sanitize(al.Severity)), sanitize(al.Source), sanitize(al.Message), s.localTime(al.Since))
		}
	}
	fmt.Fprintf(&b, "uptime: %s\n", st.Uptime.Truncate(time.Second))
	s.c.printf("%s", b.String())
	return nil
}

// localTime prints t in the configured time zone.
func (s *session) localTime(t time.Time) string {
	if site, err := s.c.opts.Config.Site(); err == nil && site.Time.Timezone != "" {
		if loc, err := time.LoadLocation(site.Time.Timezone); err == nil {
			return t.In(loc).Format(timeFormat)
		}
	}
	return t.UTC().Format(timeFormat)
}

func storageCommand() *command {
	return &command{name: "storage", summary: "recording volume: status, format, retention", subs: []*command{
		{name: "status", args: "[--json]", summary: "volume state, space, footage held", role: config.RoleViewer, json: true, run: runStorageStatus},
		{name: "format", summary: "erase and format the recording volume (type its name to confirm)", role: config.RoleAdmin, run: runStorageFormat},
		{name: "retention", args: "[CAMERA DURATION | --default DURATION] [--json]",
			summary: "show retention, or set a camera's or the default maximum footage age", role: config.RoleViewer, json: true,
			flags: map[string]flagKind{"default": valueFlag}, run: runStorageRetention,
			help: "  DURATION: 30d, 2w, 36h, or off (keep footage until the ring needs the space). Setting needs the operator role."},
	}}
}

func runStorageStatus(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	st, err := s.c.opts.System.Storage(ctx)
	if err != nil {
		return fmt.Errorf("storage status: %w", err)
	}
	if a.has("json") {
		return s.printJSON(st)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "volume: %s (%s)\n", sanitize(st.Volume), sanitize(st.State))
	if st.SizeBytes > 0 {
		fmt.Fprintf(&b, "space: %s used of %s (%d%%)\n", bytesText(st.UsedBytes), bytesText(st.SizeBytes), st.UsedBytes*100/st.SizeBytes)
	}
	oldest := "none"
	if !st.Oldest.IsZero() {
		oldest = s.localTime(st.Oldest)
	}
	fmt.Fprintf(&b, "footage held: %s (oldest %s)\n", formatHeld(st.RetentionHeld), oldest)
	if st.Detail != "" {
		fmt.Fprintf(&b, "detail: %s\n", sanitize(st.Detail))
	}
	s.c.printf("%s", b.String())
	return nil
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func runStorageFormat(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	st, err := s.c.opts.System.Storage(ctx)
	if err != nil {
		return fmt.Errorf("storage format: %w", err)
	}
	if st.Volume == "" {
		return fmt.Errorf("storage format: the system reports no volume name")
	}
	s.c.printf("This ERASES ALL RECORDINGS on volume %s (%s held).\n", sanitize(st.Volume), formatHeld(st.RetentionHeld))
	if err := s.confirm(ctx, fmt.Sprintf("Type the volume name (%s) to confirm: ", sanitize(st.Volume)), st.Volume); err != nil {
		return err
	}
	if err := s.c.opts.System.FormatStorage(ctx, st.Volume); err != nil {
		return fmt.Errorf("storage format: %w", err)
	}
	s.c.log.Warn("storage formatted from the console", "user", s.user.Name, "volume", st.Volume)
	s.c.printf("volume %s formatted\n", sanitize(st.Volume))
	return nil
}

type retentionView struct {
	Default string            `json:"default"`
	Cameras map[string]string `json:"cameras"`
}

func runStorageRetention(_ context.Context, s *session, a parsedArgs) error {
	def, setDefault := a.get("default")
	switch {
	case setDefault && len(a.pos) > 0:
		return usagef("give CAMERA DURATION or --default DURATION, not both")
	case setDefault || len(a.pos) == 2:
		if !s.user.Role.Allows(config.RoleOperator) {
			return fmt.Errorf("permission denied: setting retention needs the operator role, you are %s", s.user.Role)
		}
		m := config.SetRetention{}
		v := def
		if !setDefault {
			m.Camera, v = a.pos[0], a.pos[1]
		}
		d, err := parseAge(v)
		if err != nil {
			return err
		}
		m.MaxAge = d
		if _, err := s.apply(m); err != nil {
			return err
		}
		what := "default retention"
		if m.Camera != "" {
			what = "retention of " + m.Camera
		}
		s.c.printf("%s set to %s\n", what, formatAge(d))
		return nil
	case len(a.pos) != 0:
		return usagef("give CAMERA DURATION to set a camera's retention")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	v := retentionView{Default: formatAge(site.Storage.DefaultMaxAge), Cameras: map[string]string{}}
	for _, c := range site.Cameras {
		v.Cameras[c.Name] = formatAge(c.MaxAge)
	}
	if a.has("json") {
		return s.printJSON(v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "default: %s\n", v.Default)
	for _, c := range site.Cameras {
		if c.MaxAge == 0 {
			fmt.Fprintf(&b, "  %s: default\n", c.Name)
		} else {
			fmt.Fprintf(&b, "  %s: %s\n", c.Name, formatAge(c.MaxAge))
		}
	}
	s.c.printf("%s", b.String())
	return nil
}

// eventView merges system events and audit entries.
type eventView struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // "system" or "audit"
	Severity string    `json:"severity,omitempty"`
	Source   string    `json:"source"`
	Message  string    `json:"message"`
}

func runEvents(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	limit := 20
	if v, ok := a.get("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return usagef("--limit must be 1-10000")
		}
		limit = n
	}
	if a.has("audit") && a.has("system") {
		return usagef("give --audit or --system, not both")
	}
	var evs []eventView
	if !a.has("audit") {
		sys, err := s.c.opts.System.Events(ctx, limit)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		for _, e := range sys {
			evs = append(evs, eventView{e.Time, "system", e.Severity, e.Source, e.Message})
		}
	}
	if !a.has("system") {
		audit, err := s.c.opts.Config.Audit(0, limit)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		for _, e := range audit {
			evs = append(evs, eventView{e.Time, "audit", "", e.Actor, e.What})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.After(evs[j].Time) })
	if len(evs) > limit {
		evs = evs[:limit]
	}
	if a.has("json") {
		if evs == nil {
			evs = []eventView{}
		}
		return s.printJSON(evs)
	}
	if len(evs) == 0 {
		s.c.printf("no events\n")
		return nil
	}
	var b strings.Builder
	for _, e := range evs {
		tag := e.Kind
		if e.Severity != "" {
			tag = e.Severity
		}
		fmt.Fprintf(&b, "%s  %-8s %s: %s\n", s.localTime(e.Time), sanitize(tag), sanitize(e.Source), sanitize(e.Message))
	}
	s.c.printf("%s", b.String())
	return nil
}

func runReboot(ctx context.Context, s *session, a parsedArgs) error {
	return s.power(ctx, a, "reboot", "Reboot", s.c.opts.System.Reboot)
}

func runShutdown(ctx context.Context, s *session, a parsedArgs) error {
	return s.power(ctx, a, "shutdown", "Power off", s.c.opts.System.Shutdown)
}

func (s *session) power(ctx context.Context, a parsedArgs, word, verb string, do func(context.Context) error) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	s.c.printf("%s the appliance? Recording stops until it is back.\n", verb)
	if err := s.confirm(ctx, fmt.Sprintf("Type %q to confirm: ", word), word); err != nil {
		return err
	}
	s.c.log.Warn("power action from the console", "action", word, "user", s.user.Name)
	if err := do(ctx); err != nil {
		return fmt.Errorf("%s: %w", word, err)
	}
	s.c.printf("%s requested\n", word)
	return nil
}

func runShowBoard(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	b, err := s.c.opts.System.Board(ctx)
	if err != nil {
		return fmt.Errorf("board: %w", err)
	}
	if a.has("json") {
		return s.printJSON(b)
	}
	yes := func(v bool, y, n string) string {
		if v {
			return y
		}
		return n
	}
	var out strings.Builder
	fmt.Fprintf(&out, "board %s\n", sanitize(b.Model))
	if b.WatchdogReset {
		out.WriteString("last reset: by the hardware watchdog\n")
	}
	for _, p := range b.PSUs {
		state := yes(p.Present, "present", "ABSENT")
		if len(p.Faults) > 0 {
			state = "FAULT " + strings.Join(p.Faults, ",")
		}
		fmt.Fprintf(&out, "  psu   %-8s %-28s in %.1f V  out %.0f W  %.0f C", sanitize(p.Name), sanitize(state), p.VIn, p.POut, p.TempC)
		if p.Err != "" {
			fmt.Fprintf(&out, "  (%s)", sanitize(p.Err))
		}
		out.WriteString("\n")
	}
	for _, bay := range b.Bays {
		fmt.Fprintf(&out, "  bay   %-8s %s%s%s\n", sanitize(bay.Name), yes(bay.Present, "drive present", "EMPTY"),
			yes(bay.Fault, ", fault LED on", ""), yes(bay.Locate, ", locate LED on", ""))
	}
	for _, ar := range b.Arrays {
		line := fmt.Sprintf("  raid  %-8s %s", sanitize(ar.Name), sanitize(ar.Health))
		if ar.Progress >= 0 {
			line += fmt.Sprintf(", sync %.0f%%", ar.Progress*100)
		}
		if ar.Recording {
			line += " (recording volume)"
		}
		if ar.Err != "" {
			line += " (" + sanitize(ar.Err) + ")"
		}
		out.WriteString(line + "\n")
		for _, d := range ar.Drives {
			state := strings.Join(d.State, ",")
			if state == "" {
				state = "-"
			}
			fmt.Fprintf(&out, "        drive %-10s %-16s read errors %d", sanitize(d.Device), sanitize(state), d.ReadErrors)
			if d.IOErrors >= 0 {
				fmt.Fprintf(&out, ", I/O errors %d", d.IOErrors)
			}
			out.WriteString("\n")
		}
	}
	s.c.printf("%s", out.String())
	return nil
}
