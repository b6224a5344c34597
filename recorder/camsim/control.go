package camsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ControlHandler returns the HTTP control endpoint:
//
//	GET  /paths                      every path's PathStats (JSON array)
//	GET  /paths/NAME                 one path's PathStats (JSON)
//	GET  /paths/NAME/frames          the remembered SentFrames (JSON array); optional
//	     since=TIME, until=TIME      (RFC 3339, e.g. 2026-11-25T17:00:00.5Z) bound Time to [since, until)
//	POST /paths/NAME/fault?kind=K    apply a fault; arguments:
//	     for=DURATION  FaultStall, FaultNeverAnswer (Go duration, e.g. 5s; absent: until kind=clear), FaultRestart (down time)
//	     by=OFFSET     FaultJump, FaultJumpNTP (e.g. 1h, -30s)
//	     count=N       FaultMalformed
//
// NAME may contain slashes. Errors answer 400 (bad request), 404 (no such
// path) or 405, with a one-line text body.
func (s *Simulator) ControlHandler() http.Handler {
	return http.HandlerFunc(s.serveControl)
}

func (s *Simulator) serveControl(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/paths")
	if !ok || (rest != "" && rest[0] != '/') {
		http.NotFound(w, r)
		return
	}
	rest = strings.TrimPrefix(rest, "/")
	if name, ok := strings.CutSuffix(rest, "/fault"); ok && name != "" {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		f, err := parseFaultQuery(r)
		if err == nil {
			err = s.Fault(name, f)
		}
		if err != nil {
			controlError(w, err)
			return
		}
		writeJSON(w, map[string]any{"ok": true, "path": name, "kind": f.Kind})
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	if name, ok := strings.CutSuffix(rest, "/frames"); ok && name != "" {
		s.serveFrames(w, r, name)
		return
	}
	if rest == "" {
		names := s.Paths()
		out := make([]PathStats, 0, len(names))
		for _, n := range names {
			if st, err := s.Stats(n); err == nil {
				out = append(out, st)
			}
		}
		writeJSON(w, out)
		return
	}
	st, err := s.Stats(rest)
	if err != nil {
		controlError(w, err)
		return
	}
	writeJSON(w, st)
}

func (s *Simulator) serveFrames(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	since, until := time.Time{}, time.Now().Add(time.Hour)
	for _, b := range []struct {
		key string
		t   *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(b.key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				controlError(w, fmt.Errorf("%w: %s: %w", ErrBadConfig, b.key, err))
				return
			}
			*b.t = t
		}
	}
	frames, err := s.SentFrames(name, since, until)
	if err != nil {
		controlError(w, err)
		return
	}
	if frames == nil {
		frames = []SentFrame{}
	}
	writeJSON(w, frames)
}

// parseFaultQuery reads a Fault from a control request's query.
func parseFaultQuery(r *http.Request) (Fault, error) {
	q := r.URL.Query()
	f := Fault{Kind: FaultKind(q.Get("kind"))}
	if f.Kind == "" {
		return f, fmt.Errorf("%w: missing kind (one of %v)", ErrBadConfig, FaultKinds)
	}
	var err error
	if v := q.Get("for"); v != "" {
		if f.Duration, err = time.ParseDuration(v); err != nil {
			return f, fmt.Errorf("%w: for: %w", ErrBadConfig, err)
		}
	}
	if v := q.Get("by"); v != "" {
		if f.Offset, err = time.ParseDuration(v); err != nil {
			return f, fmt.Errorf("%w: by: %w", ErrBadConfig, err)
		}
	}
	if v := q.Get("count"); v != "" {
		if f.Count, err = strconv.Atoi(v); err != nil {
			return f, fmt.Errorf("%w: count: %w", ErrBadConfig, err)
		}
	}
	return f, nil
}

func controlError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNoPath):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadConfig):
		code = http.StatusBadRequest
	}
	http.Error(w, err.Error(), code)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
