package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeCluster is a Backend of a node in a pair.
type fakeCluster struct {
	fakeBackend
	primary     string
	switchovers int
	failWith    error
}

func (f *fakeCluster) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "admin-token" {
		return Principal{Name: "ops", Role: "admin"}, nil
	}
	return f.fakeBackend.Authenticate(ctx, token)
}

func (f *fakeCluster) Cluster(context.Context) (ClusterStatus, error) {
	return ClusterStatus{Node: "a", Role: "primary", Epoch: uint64(3 + f.switchovers), Primary: f.primary,
		Members: []ClusterMember{{ID: "a"}, {ID: "b"}, {ID: "w", Witness: true}}, Links: []ClusterLink{{Name: "dedicated", Up: true, RTT: Duration(time.Millisecond)}},
		Mirror: MirrorStatus{Side: "sender", Connected: true, LagSeconds: 0.4}}, nil
}

func (f *fakeCluster) Switchover(context.Context) error {
	if f.failWith != nil {
		return f.failWith
	}
	f.switchovers++
	f.primary = "b"
	return nil
}

func TestClusterEndpoints(t *testing.T) {
	fc := &fakeCluster{primary: "a"}
	s, err := New(Options{Backend: fc})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	plain, _ := newTestServer(t) // a Backend without a cluster
	do := func(method, base, path, token string) (*http.Response, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, json.NewDecoder(resp.Body).Decode(&map[string]any{}))
		return resp, b.String()
	}
	tests := []struct {
		name, method, base, path, token string
		want                            int
	}{
		{"state", "GET", ts.URL, "/api/v1/cluster", "good-token", 200},
		{"state needs a token", "GET", ts.URL, "/api/v1/cluster", "", 401},
		{"not in a pair", "GET", plain.URL, "/api/v1/cluster", "good-token", 404},
		{"switchover needs admin", "POST", ts.URL, "/api/v1/cluster/switchover", "good-token", 403},
		{"switchover needs a token", "POST", ts.URL, "/api/v1/cluster/switchover", "", 401},
		{"switchover", "POST", ts.URL, "/api/v1/cluster/switchover", "admin-token", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(tc.method, tc.base, tc.path, tc.token)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d (%s), want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
		})
	}
	if fc.switchovers != 1 || fc.primary != "b" {
		t.Fatalf("switchovers %d, primary %s", fc.switchovers, fc.primary)
	}
	fc.failWith = fmt.Errorf("no standby: %w", ErrConflict)
	if resp, _ := do("POST", ts.URL, "/api/v1/cluster/switchover", "admin-token"); resp.StatusCode != 409 {
		t.Fatalf("switchover without a standby: %d, want 409", resp.StatusCode)
	}
}
