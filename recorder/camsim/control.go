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
//	GET    /paths                    every path's PathStats (JSON array)
//	GET    /paths/NAME               one path's PathStats (JSON)
//	PUT    /paths/NAME?spec=SPEC     add a path; SPEC as in ParsePathSpec without
//	                                 the name, e.g. h265,audio=aac,bitrate=4M (default h264)
//	DELETE /paths/NAME               remove a path, disconnecting its readers
//	GET    /paths/NAME/frames        the remembered SentFrames (JSON array); optional
//	       since=TIME, until=TIME    (RFC 3339, e.g. 2026-11-25T17:00:00.5Z) bound Time to [since, until)
//	POST   /paths/NAME/fault?kind=K  apply a fault; arguments:
//	       for=DURATION  FaultStall, FaultNeverAnswer (Go duration, e.g. 5s; absent: until kind=clear), FaultRestart (down time)
//	       by=OFFSET     FaultJump, FaultJumpNTP (e.g. 1h, -30s)
//	       count=N       FaultMalformed
//
// NAME may contain slashes. Errors answer 400 (bad request), 404 (no such
// path), 405, 409 (path exists) or 503 (closed), with a one-line text body.
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
		if allow(w, r, http.MethodPost) {
			s.serveFault(w, r, name)
		}
		return
	}
	if name, ok := strings.CutSuffix(rest, "/frames"); ok && name != "" {
		if allow(w, r, http.MethodGet) {
			s.serveFrames(w, r, name)
		}
		return
	}
	if rest == "" {
		if allow(w, r, http.MethodGet) {
			names := s.Paths()
			out := make([]PathStats, 0, len(names))
			for _, n := range names {
				if st, err := s.Stats(n); err == nil {
					out = append(out, st)
				}
			}
			writeJSON(w, out)
		}
		return
	}
	if allow(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		s.servePath(w, r, rest)
	}
}

// allow answers 405 and reports false unless r uses one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "use "+strings.Join(methods, " or "), http.StatusMethodNotAllowed)
	return false
}

func (s *Simulator) servePath(w http.ResponseWriter, r *http.Request, name string) {
	var err error
	switch r.Method {
	case http.MethodPut:
		spec := r.URL.Query().Get("spec")
		if spec == "" {
			spec = string(H264)
		}
		var cfg PathConfig
		if _, cfg, err = ParsePathSpec("path=" + spec); err == nil {
			err = s.AddPath(name, cfg)
		}
		if err == nil {
			writeJSONStatus(w, http.StatusCreated, map[string]any{"ok": true, "path": name, "url": s.URL(name)})
			return
		}
	case http.MethodDelete:
		if err = s.RemovePath(name); err == nil {
			writeJSON(w, map[string]any{"ok": true, "path": name})
			return
		}
	default:
		var st PathStats
		if st, err = s.Stats(name); err == nil {
			writeJSON(w, st)
			return
		}
	}
	controlError(w, err)
}

func (s *Simulator) serveFault(w http.ResponseWriter, r *http.Request, name string) {
	f, err := parseFaultQuery(r)
	if err == nil {
		err = s.Fault(name, f)
	}
	if err != nil {
		controlError(w, err)
		return
	}
	writeJSON(w, map[string]any{"ok": true, "path": name, "kind": f.Kind})
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
	case errors.Is(err, ErrPathExists):
		code = http.StatusConflict
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}

// writeJSON writes v as a 200 response body.
func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
