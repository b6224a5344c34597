package camsim

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzControlRequest sends arbitrary requests to the control endpoint of a
// simulator that is not started (faults still apply): it must answer each
// with a status it documents, and never panic.
func FuzzControlRequest(f *testing.F) {
	for _, seed := range [][2]string{
		{"GET", "/paths"}, {"GET", "/paths/cam1"}, {"POST", "/paths/cam1/fault?kind=stall&for=1s"},
		{"POST", "/paths/cam1/fault?kind=jump&by=-30s"}, {"POST", "/paths/cam1/fault?kind=malformed&count=5"},
		{"POST", "/paths/a/b/fault?kind=never-answer"}, {"DELETE", "/paths/cam1"},
		{"PUT", "/paths/x?spec=h265,audio=pcmu"}, {"GET", "/paths/a/b/frames?since=2026-11-25T17:00:00Z"},
	} {
		f.Add(seed[0], seed[1])
	}
	s, err := New(Options{Address: "127.0.0.1:0", FrameHistory: -1}) // PUT may add many paths
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	for _, name := range []string{"cam1", "a/b"} {
		if err := s.AddPath(name, PathConfig{}); err != nil {
			f.Fatal(err)
		}
	}
	h := s.ControlHandler()
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, "http://camsim"+target, nil)
		if err != nil || req.URL.Path == "" || req.URL.Path[0] != '/' {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusCreated, http.StatusBadRequest, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusConflict:
		default:
			t.Fatalf("%s %s: status %d: %s", method, target, rec.Code, rec.Body)
		}
	})
}
