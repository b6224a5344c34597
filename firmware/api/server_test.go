package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type fakeClip struct{ data []byte }

func (c *fakeClip) Name() string       { return "cam1.mp4" }
func (c *fakeClip) ModTime() time.Time { return testNow }
func (c *fakeClip) Size() int64        { return int64(len(c.data)) }
func (c *fakeClip) WriteRange(_ context.Context, w io.Writer, off, n int64) error {
	_, err := w.Write(c.data[off : off+n])
	return err
}

type fakeBackend struct {
	events  chan Event
	clip    []byte
	healthy bool
	lastRec rangeQuery
}

func (f *fakeBackend) Authenticate(_ context.Context, token string) (Principal, error) {
	if token == "good-token" {
		return Principal{Name: "vms", Role: "viewer"}, nil
	}
	return Principal{}, ErrUnauthorized
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Hostname: "nvr-1", Version: "1.0.0", Uptime: Duration(90 * time.Second), Healthy: true,
		Cameras: CameraCounts{Total: 2, Recording: 1, Offline: 1}}, nil
}

func (f *fakeBackend) Cameras(context.Context) ([]Camera, error) {
	return []Camera{{Name: "cam1", State: "recording", Codec: "H264"}, {Name: "cam2", State: "backoff", LastError: "connection refused"}}, nil
}

func (f *fakeBackend) Recordings(_ context.Context, camera string, from, to time.Time) (Recordings, error) {
	f.lastRec = rangeQuery{camera, from, to}
	if camera != "cam1" {
		return Recordings{}, fmt.Errorf("camera %q: %w", camera, ErrNotFound)
	}
	return Recordings{Camera: camera, From: from, To: to,
		Spans: []Span{{Start: from, End: from.Add(time.Minute)}},
		Gaps:  []Gap{{Start: from.Add(time.Minute), End: to, Cause: "camera offline"}}}, nil
}

func (f *fakeBackend) Export(_ context.Context, camera string, from, to time.Time) (Clip, error) {
	if camera != "cam1" {
		return nil, fmt.Errorf("camera %q: %w", camera, ErrNotFound)
	}
	return &fakeClip{data: f.clip}, nil
}

func (f *fakeBackend) Subscribe(ctx context.Context) <-chan Event {
	out := make(chan Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-f.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (f *fakeBackend) Healthy(context.Context) (bool, []string) {
	if f.healthy {
		return true, nil
	}
	return false, []string{"store: no commit for 12s"}
}

func newTestServer(t *testing.T) (*httptest.Server, *fakeBackend) {
	t.Helper()
	fb := &fakeBackend{events: make(chan Event), clip: bytes.Repeat([]byte("0123456789"), 1000), healthy: true}
	s, err := New(Options{Backend: fb, Now: func() time.Time { return testNow }, SSEHeartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, fb
}

func get(t *testing.T, ts *httptest.Server, path, token string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestEndpoints(t *testing.T) {
	ts, _ := newTestServer(t)
	tests := []struct {
		name, path, token string
		code              int
		contains          string
	}{
		{"healthz needs no token", "/healthz", "", 200, "ok"},
		{"openapi needs no token", "/api/v1/openapi.json", "", 200, `"openapi"`},
		{"status", "/api/v1/status", "good-token", 200, `"hostname": "nvr-1"`},
		{"status uptime in seconds", "/api/v1/status", "good-token", 200, `"uptime": 90`},
		{"status without token", "/api/v1/status", "", 401, "missing bearer token"},
		{"status wrong token", "/api/v1/status", "bad", 401, "invalid or missing API token"},
		{"cameras", "/api/v1/cameras", "good-token", 200, `"cam2"`},
		{"camera", "/api/v1/cameras/cam2", "good-token", 200, "connection refused"},
		{"unknown camera", "/api/v1/cameras/nope", "good-token", 404, "no camera named"},
		{"recordings", "/api/v1/recordings?camera=cam1&from=-1h", "good-token", 200, `"cause": "camera offline"`},
		{"recordings unknown camera", "/api/v1/recordings?camera=cam9&from=-1h", "good-token", 404, "not found"},
		{"recordings no camera", "/api/v1/recordings?from=-1h", "good-token", 400, "missing query parameter camera"},
		{"recordings bad from", "/api/v1/recordings?camera=cam1&from=yesterday", "good-token", 400, "from: bad time"},
		{"recordings reversed", "/api/v1/recordings?camera=cam1&from=-1h&to=-2h", "good-token", 400, "is not before"},
		{"recordings too long", "/api/v1/recordings?camera=cam1&from=-48h", "good-token", 400, "longer than the maximum"},
		{"recordings unknown param", "/api/v1/recordings?camera=cam1&from=-1h&fmt=x", "good-token", 400, "unknown query parameter"},
		{"recordings bad camera name", "/api/v1/recordings?camera=../etc&from=-1h", "good-token", 400, "not a valid camera name"},
		{"recordings without token", "/api/v1/recordings?camera=cam1&from=-1h", "", 401, ""},
		{"export", "/api/v1/export?camera=cam1&from=-1h", "good-token", 200, "0123456789"},
		{"export without token", "/api/v1/export?camera=cam1&from=-1h", "", 401, ""},
		{"export bad range", "/api/v1/export?camera=cam1&from=1e30", "good-token", 400, "bad time"},
		{"metrics", "/metrics", "good-token", 200, "nvr_api_requests_total"},
		{"metrics without token", "/metrics", "", 401, ""},
		{"unknown endpoint", "/api/v1/frobs", "good-token", 404, "no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, ts, tt.path, tt.token)
			if resp.StatusCode != tt.code {
				t.Fatalf("GET %s: %d, want %d: %s", tt.path, resp.StatusCode, tt.code, body)
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Fatalf("GET %s: body %q lacks %q", tt.path, body, tt.contains)
			}
			if tt.code >= 400 && tt.code != 404 || strings.HasPrefix(tt.path, "/api/") && tt.code >= 400 {
				var e apiError
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Fatalf("error response is not {\"error\": ...}: %q", body)
				}
			}
		})
	}
}

func TestRecordingsTimes(t *testing.T) {
	ts, fb := newTestServer(t)
	resp, body := get(t, ts, "/api/v1/recordings?camera=cam1&from=2026-11-25T10:00:00Z&to=1795604400", "good-token")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if want := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC); !fb.lastRec.from.Equal(want) {
		t.Errorf("from = %v, want %v", fb.lastRec.from, want)
	}
	if want := time.Unix(1795604400, 0); !fb.lastRec.to.Equal(want) {
		t.Errorf("to = %v, want %v", fb.lastRec.to, want)
	}
}

func TestHealthzUnhealthy(t *testing.T) {
	ts, fb := newTestServer(t)
	fb.healthy = false
	resp, body := get(t, ts, "/healthz", "")
	if resp.StatusCode != 503 || !strings.Contains(string(body), "no commit") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestExportRange(t *testing.T) {
	ts, fb := newTestServer(t)
	resp, body := get(t, ts, "/api/v1/export?camera=cam1&from=-1h", "good-token", "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if string(body) != string(fb.clip[10:20]) {
		t.Errorf("range body %q", body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 10-19/%d", len(fb.clip)) {
		t.Errorf("Content-Range %q", cr)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
		t.Errorf("Content-Type %q", ct)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("export without ETag")
	}
	resp, body = get(t, ts, "/api/v1/export?camera=cam1&from=-1h", "good-token", "Range", "bytes=10-19", "If-Range", etag)
	if resp.StatusCode != http.StatusPartialContent || len(body) != 10 {
		t.Errorf("If-Range with the current ETag: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = get(t, ts, "/api/v1/export?camera=cam1&from=-1h", "good-token", "Range", "bytes=10-19", "If-Range", `"stale"`)
	if resp.StatusCode != http.StatusOK || len(body) != len(fb.clip) {
		t.Errorf("If-Range with a stale ETag: %d, %d bytes; want the whole clip", resp.StatusCode, len(body))
	}
	resp, _ = get(t, ts, "/api/v1/export?camera=cam1&from=-1h", "good-token", "Range", "bytes=999999-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: status %d", resp.StatusCode)
	}
	for hdr, want := range map[string]string{"bytes=-5": "56789", "bytes=9990-": "0123456789", "bytes=0-2,5-6": string(fb.clip)} {
		resp, body = get(t, ts, "/api/v1/export?camera=cam1&from=-1h", "good-token", "Range", hdr)
		if wantCode := map[bool]int{true: 206, false: 200}[hdr != "bytes=0-2,5-6"]; resp.StatusCode != wantCode {
			t.Errorf("Range %s: status %d, want %d", hdr, resp.StatusCode, wantCode)
		}
		if string(body) != want {
			t.Errorf("Range %s: got %d bytes %.20q, want %.20q", hdr, len(body), body, want)
		}
	}
	for _, hdr := range []string{"bytes=5-2", "items=0-1", "bytes=x-"} {
		resp, _ = get(t, ts, "/api/v1/export?camera=cam1&from=-1h", "good-token", "Range", hdr)
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("Range %s: status %d, want 416", hdr, resp.StatusCode)
		}
	}
	resp, _ = get(t, ts, "/api/v1/export?camera=nope&from=-1h", "good-token")
	if resp.StatusCode != 404 {
		t.Errorf("unknown camera export: %d", resp.StatusCode)
	}
}

func TestEventsStream(t *testing.T) {
	ts, fb := newTestServer(t)
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer good-token")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := ts.Client().Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	go func() {
		fb.events <- Event{ID: 7, Kind: "psu.lost", Severity: "critical", Source: "psu1", Message: "PSU 1 lost input"}
	}()
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() && len(got) < 3 {
		line := sc.Text()
		if strings.HasPrefix(line, "id:") || strings.HasPrefix(line, "event:") || strings.HasPrefix(line, "data:") {
			got = append(got, line)
		}
	}
	want := []string{"id: 7", "event: psu.lost"}
	if len(got) < 3 || got[0] != want[0] || got[1] != want[1] || !strings.Contains(got[2], `"message":"PSU 1 lost input"`) {
		t.Fatalf("event lines %q", got)
	}
}

// TestOpenAPIMatchesServer keeps openapi.json true: the documented operations
// are exactly the served ones, authentication matches, and every documented
// response schema has exactly the JSON fields of the Go type served.
func TestOpenAPIMatchesServer(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Security  *[]any `json:"security"`
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	s, err := New(Options{Backend: &fakeBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, rt := range s.table() {
		key := strings.ToLower(rt.method) + " " + rt.path
		served[key] = true
		if rt.method == "HEAD" {
			continue // HEAD mirrors GET and is not documented separately
		}
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("served but not documented: %s", key)
			continue
		}
		documentedPublic := op.Security != nil && len(*op.Security) == 0
		if documentedPublic == rt.auth {
			t.Errorf("%s: documented public=%v, served with auth=%v", key, documentedPublic, rt.auth)
		}
		if _, ok := op.Responses["401"]; rt.auth && !ok {
			t.Errorf("%s: needs a token but documents no 401", key)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("documented but not served: %s %s", method, path)
			}
		}
	}
	types := map[string]any{
		"Status": Status{}, "CameraCounts": CameraCounts{}, "StorageStatus": StorageStatus{}, "Alarm": Alarm{},
		"Component": Component{}, "Camera": Camera{}, "Recordings": Recordings{}, "Span": Span{}, "Gap": Gap{},
		"Event": Event{}, "Error": apiError{},
		"BoardStatus": BoardStatus{}, "PSUStatus": PSUStatus{}, "BayStatus": BayStatus{}, "ArrayStatus": ArrayStatus{},
		"ClusterStatus": ClusterStatus{}, "ClusterMember": ClusterMember{}, "ClusterLink": ClusterLink{}, "MirrorStatus": MirrorStatus{},
		"TimeStatus": TimeStatus{}, "DriveStatus": DriveStatus{},
	}
	for name, v := range types {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var documented, actual []string
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			tag := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]
			if tag != "" && tag != "-" {
				actual = append(actual, tag)
			}
		}
		sort.Strings(documented)
		sort.Strings(actual)
		if !reflect.DeepEqual(documented, actual) {
			t.Errorf("schema %s documents %v, Go type has %v", name, documented, actual)
		}
	}
}

func FuzzParseRangeQuery(f *testing.F) {
	for _, seed := range []string{
		"camera=cam1&from=-1h", "camera=cam1&from=2026-11-25T10:00:00Z&to=now", "camera=&from=1",
		"camera=cam1&from=1764064800.5&to=1764068400", "from=-1h&from=-2h&camera=a", "%zz", "camera=a&from=-9999999h",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseRangeQuery(v, testNow, 24*time.Hour)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if !cameraName.MatchString(q.camera) || !q.from.Before(q.to) || q.to.Sub(q.from) > 24*time.Hour {
			t.Fatalf("accepted an invalid query %q -> %+v", raw, q)
		}
	})
}

func FuzzParseByteRange(f *testing.F) {
	for _, seed := range []string{"", "bytes=0-9", "bytes=-5", "bytes=5-", "bytes=5-2", "bytes=0-1,3-4", "items=1-2", "bytes=99999999999999999999-"} {
		f.Add(seed, int64(1000))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size <= 0 || size > 1<<40 {
			return
		}
		off, n, partial, err := parseByteRange(header, size)
		if err != nil {
			return
		}
		if off < 0 || n <= 0 || off+n > size {
			t.Fatalf("Range %q of %d bytes -> [%d, +%d): outside the clip", header, size, off, n)
		}
		if !partial && (off != 0 || n != size) {
			t.Fatalf("Range %q: whole-clip answer with off %d n %d", header, off, n)
		}
	})
}
