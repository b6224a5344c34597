package camsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// TestLifecycleNoLeaks runs alone (not parallel): it adds and removes paths
// while running, holds a connection with never-answer across Close, and
// checks that Close joins every goroutine and is idempotent.
func TestLifecycleNoLeaks(t *testing.T) {
	checkGoroutines(t)
	s, err := New(Options{Address: "127.0.0.1:0", ControlAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]PathConfig{"a": {Audio: AAC}, "b": {Video: H265}} {
		if err := s.AddPath(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	ra := readPath(t, s, "a", readOpts{transport: gortsplib.TransportTCP})
	rb := readPath(t, s, "b", readOpts{transport: gortsplib.TransportUDP})
	ra.waitFrames(t, 0, 3, 3*time.Second)
	rb.waitFrames(t, 0, 3, 3*time.Second)

	if err := s.AddPath("c", PathConfig{Audio: PCMU}); err != nil {
		t.Fatal(err)
	}
	rc := readPath(t, s, "c", readOpts{transport: gortsplib.TransportTCP})
	rc.waitFrames(t, 1, 5, 3*time.Second)
	rc.waitFrames(t, 0, 5, 3*time.Second)
	if err := s.AddPath("c", PathConfig{}); !errors.Is(err, ErrPathExists) {
		t.Errorf("AddPath twice: %v, want ErrPathExists", err)
	}

	if err := s.RemovePath("a"); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, ra, 3*time.Second); err == nil {
		t.Error("reader of a removed path ended without error")
	}
	if err := s.RemovePath("a"); !errors.Is(err, ErrNoPath) {
		t.Errorf("RemovePath twice: %v, want ErrNoPath", err)
	}
	if _, err := dialReader(t, s, "a", readOpts{transport: gortsplib.TransportTCP}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("dial a removed path: %v, want 404", err)
	}

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 3 * time.Second}
	res, err := hc.Get("http://" + s.ControlAddr() + "/paths")
	if err != nil {
		t.Fatal(err)
	}
	var all []PathStats
	err = json.NewDecoder(res.Body).Decode(&all)
	res.Body.Close()
	if err != nil || len(all) != 2 || all[0].Path != "b" || all[1].Path != "c" {
		t.Errorf("GET /paths: %v %+v", err, all)
	}
	res, err = hc.Get("http://" + s.ControlAddr() + "/paths/c/frames")
	if err != nil {
		t.Fatal(err)
	}
	var frames []SentFrame
	err = json.NewDecoder(res.Body).Decode(&frames)
	res.Body.Close()
	if err != nil || len(frames) < 5 || !frames[0].Time.Before(frames[len(frames)-1].Time) {
		t.Errorf("GET /paths/c/frames: %v, %d frames", err, len(frames))
	}

	mustFault(t, s, "b", Fault{Kind: FaultNeverAnswer})
	held := make(chan error, 1)
	go func() {
		r, err := dialReader(t, s, "b", readOpts{transport: gortsplib.TransportTCP, timeout: 5 * time.Second})
		if err == nil {
			r.c.Close()
		}
		held <- err
	}()
	waitStats(t, s, "b", 2*time.Second, func(st PathStats) bool { return st.Held == 1 })

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := <-held; err == nil {
		t.Error("held connection answered at Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.AddPath("d", PathConfig{}); !errors.Is(err, ErrClosed) {
		t.Errorf("AddPath after Close: %v, want ErrClosed", err)
	}
	if err := s.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	waitDone(t, rb, 3*time.Second)
}

func TestControlHandler(t *testing.T) {
	s := startSim(t, Options{}, map[string]PathConfig{"cam1": {}, "site/cam2": {Video: H265}})
	h := s.ControlHandler()
	for _, tt := range []struct {
		method, url string
		code        int
		body        string // substring of the response
	}{
		{"GET", "/paths", 200, `"path": "site/cam2"`},
		{"GET", "/paths/cam1", 200, `"clip": "h264.h264"`},
		{"GET", "/paths/site/cam2", 200, `"clip": "h265.h265"`},
		{"GET", "/paths/nope", 404, "no such path"},
		{"GET", "/other", 404, ""},
		{"GET", "/pathsx", 404, ""},
		{"POST", "/paths", 405, ""},
		{"PUT", "/paths/new1?spec=h265,audio=aac,bitrate=2M", 201, `"url": "rtsp://`},
		{"GET", "/paths/new1", 200, `"clip": "h265.h265"`},
		{"PUT", "/paths/new1", 409, "exists"},
		{"PUT", "/paths/site/new2", 201, `"path": "site/new2"`},
		{"PUT", "/paths/new3?spec=vp8", 400, "video codec"},
		{"PUT", "/paths/bad%20name", 400, "path name"},
		{"DELETE", "/paths/new1", 200, `"ok": true`},
		{"DELETE", "/paths/new1", 404, "no such path"},
		{"GET", "/paths/new1", 404, ""},
		{"PATCH", "/paths/cam1", 405, ""},
		{"DELETE", "/paths", 405, ""},
		{"GET", "/paths/cam1/fault?kind=drop", 405, ""},
		{"POST", "/paths/cam1/fault", 400, "missing kind"},
		{"POST", "/paths/cam1/fault?kind=boom", 400, "fault kind"},
		{"POST", "/paths/cam1/fault?kind=stall&for=zz", 400, "for"},
		{"POST", "/paths/cam1/fault?kind=jump&by=x", 400, "by"},
		{"POST", "/paths/cam1/fault?kind=malformed&count=x", 400, "count"},
		{"POST", "/paths/nope/fault?kind=drop", 404, ""},
		{"POST", "/paths/cam1/fault?kind=stall&for=50ms", 200, `"ok": true`},
		{"POST", "/paths/site/cam2/fault?kind=jump&by=-30s", 200, `"kind": "jump"`},
		{"POST", "/paths/cam1/fault?kind=malformed&count=3", 200, `"ok": true`},
		{"POST", "/paths/cam1/fault?kind=never-answer&for=1s", 200, `"ok": true`},
		{"POST", "/paths/cam1/fault?kind=clear", 200, `"ok": true`},
		{"GET", "/paths/cam1/frames", 200, "["},
		{"GET", "/paths/cam1/frames?since=2026-01-01T00:00:00Z&until=2099-01-01T00:00:00.5Z", 200, "["},
		{"GET", "/paths/cam1/frames?since=yesterday", 400, "since"},
		{"GET", "/paths/nope/frames", 404, ""},
	} {
		t.Run(tt.method+" "+tt.url, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.url, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.code || !strings.Contains(string(body), tt.body) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, body, tt.code, tt.body)
			}
		})
	}
}
