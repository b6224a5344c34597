package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed openapi.json
var openAPIDoc []byte

// Options configures a Server.
type Options struct {
	// Backend serves the data; required.
	Backend Backend
	// Gatherer is what /metrics exposes; nil means a private registry holding
	// only the API's own metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the API's own metrics; nil means the private
	// registry above (or none when Gatherer is set).
	Registerer prometheus.Registerer
	// Logger receives one line per failed request; nil discards.
	Logger *slog.Logger
	// MaxRange bounds the time range of one search or export; 0 means 24h.
	MaxRange time.Duration
	// Now is the clock used to resolve relative times; nil means time.Now.
	Now func() time.Time
	// SSEHeartbeat is the interval of keep-alive comments on the event
	// stream; 0 means 15s.
	SSEHeartbeat time.Duration
}

// Server is the HTTP API. Create it with New; serve it with Run or use it as
// an http.Handler.
type Server struct {
	opts     Options
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New validates opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Backend == nil {
		return nil, errors.New("api: Options.Backend is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRange <= 0 {
		opts.MaxRange = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SSEHeartbeat <= 0 {
		opts.SSEHeartbeat = 15 * time.Second
	}
	if opts.Gatherer == nil {
		reg := prometheus.NewRegistry()
		opts.Gatherer = reg
		if opts.Registerer == nil {
			opts.Registerer = reg
		}
	}
	s := &Server{
		opts: opts,
		mux:  http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nvr_api_requests_total", Help: "API requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nvr_api_request_duration_seconds", Help: "API request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.requests, s.latency} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("api: register metrics: %w", err)
			}
		}
	}
	s.routes()
	return s, nil
}

// route is one documented endpoint: the OpenAPI test checks this table
// against openapi.json.
type route struct {
	method, path string
	auth         bool
	handler      func(http.ResponseWriter, *http.Request)
}

func (s *Server) table() []route {
	return []route{
		{"GET", "/healthz", false, s.healthz},
		{"GET", "/metrics", true, promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}).ServeHTTP},
		{"GET", "/api/v1/openapi.json", false, s.openapi},
		{"GET", "/api/v1/status", true, s.status},
		{"GET", "/api/v1/cameras", true, s.cameras},
		{"GET", "/api/v1/cameras/{name}", true, s.camera},
		{"GET", "/api/v1/recordings", true, s.recordings},
		{"GET", "/api/v1/export", true, s.export},
		{"HEAD", "/api/v1/export", true, s.export},
		{"GET", "/api/v1/events", true, s.events},
		{"GET", "/api/v1/cluster", true, s.cluster},
		{"POST", "/api/v1/cluster/switchover", true, s.clusterSwitchover},
	}
}

func (s *Server) routes() {
	for _, rt := range s.table() {
		h := rt.handler
		if rt.auth {
			h = s.authenticated(h)
		}
		s.mux.HandleFunc(rt.method+" "+rt.path, s.instrument(rt.path, h))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Run serves on ln (with TLS when tlsConf is non-nil) until ctx is done, then
// shuts down gracefully (in-flight requests get 5 s) and returns.
func (s *Server) Run(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) { r.code = code; r.ResponseWriter.WriteHeader(code) }
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		s.requests.WithLabelValues(name, strconv.Itoa(rec.code)).Inc()
		s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if rec.code >= 500 {
			s.opts.Logger.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "code", rec.code)
		}
	}
}

func (s *Server) authenticated(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nvr"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing bearer token (Authorization: Bearer TOKEN; create one on the console with 'tokens create')"))
			return
		}
		if _, err := s.opts.Backend.Authenticate(r.Context(), strings.TrimSpace(token)); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nvr", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, ErrUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ok, problems := s.opts.Backend.Healthy(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unhealthy: %s\n", strings.Join(problems, "; "))
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.opts.Backend.Status(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) cameras(w http.ResponseWriter, r *http.Request) {
	cams, err := s.opts.Backend.Cameras(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cams)
}

func (s *Server) camera(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	cams, err := s.opts.Backend.Cameras(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	for _, c := range cams {
		if c.Name == name {
			writeJSON(w, http.StatusOK, c)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("no camera named %q", name))
}

func (s *Server) recordings(w http.ResponseWriter, r *http.Request) {
	q, err := parseRangeQuery(r.URL.Query(), s.opts.Now(), s.opts.MaxRange)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	rec, err := s.opts.Backend.Recordings(r.Context(), q.camera, q.from, q.to)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	q, err := parseRangeQuery(r.URL.Query(), s.opts.Now(), s.opts.MaxRange)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	clip, err := s.opts.Backend.Export(r.Context(), q.camera, q.from, q.to)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	size := clip.Size()
	etag := clipETag(clip)
	rangeHdr := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		rangeHdr = "" // the clip changed since the client's earlier ranges: send it whole
	}
	off, n, partial, err := parseByteRange(rangeHdr, size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		writeError(w, http.StatusRequestedRangeNotSatisfiable, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", etag)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": clip.Name()}))
	h.Set("Last-Modified", clip.ModTime().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	code := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		code = http.StatusPartialContent
	}
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	if err := clip.WriteRange(r.Context(), w, off, n); err != nil {
		// Headers are gone: all that can be done is cut the connection
		// short, which the client sees as a truncated body.
		s.opts.Logger.Warn("export aborted", "camera", q.camera, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// clipETag identifies a clip's bytes: a range request for an open-ended
// range ("to=now") resolves to a longer clip each time, and a client must use
// If-Range with this tag to avoid stitching parts of different clips.
func clipETag(c Clip) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", c.Name(), c.Size(), c.ModTime().UnixNano())))
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// parseByteRange interprets a Range header against a resource of size bytes.
// It serves one range; a header asking for several is answered with the whole
// clip, as RFC 9110 allows.
func parseByteRange(header string, size int64) (off, n int64, partial bool, err error) {
	if header == "" {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return 0, 0, false, fmt.Errorf("range %q: only byte ranges are supported", header)
	}
	if strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, false, fmt.Errorf("range %q is malformed", header)
	}
	if first == "" { // suffix: the last N bytes
		k, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || k <= 0 {
			return 0, 0, false, fmt.Errorf("range %q is malformed", header)
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	start, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || start < 0 {
		return 0, 0, false, fmt.Errorf("range %q is malformed", header)
	}
	if start >= size {
		return 0, 0, false, fmt.Errorf("range %q starts beyond the clip's %d bytes", header, size)
	}
	end := size - 1
	if last != "" {
		e, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || e < start {
			return 0, 0, false, fmt.Errorf("range %q is malformed", header)
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true, nil
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming unsupported by this connection"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": nvr event stream\n\n")
	fl.Flush()
	ctx := r.Context()
	ch := s.opts.Backend.Subscribe(ctx)
	tick := time.NewTicker(s.opts.SSEHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case ev, ok := <-ch:
			if !ok {
				return
			}
			data, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Kind, data)
		}
		fl.Flush()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error()})
}

func writeBackendError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
