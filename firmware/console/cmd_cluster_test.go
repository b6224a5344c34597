package console

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// clusterFake is a System of a node in a pair.
type clusterFake struct {
	*fakeSystem
	mu          sync.Mutex
	switchovers int
}

func (f *clusterFake) Cluster(context.Context) (ClusterReport, error) {
	return ClusterReport{Text: "node a: primary (raft Leader, term 3)\n", Data: map[string]any{"node": "a", "role": "primary"}}, nil
}

func (f *clusterFake) Switchover(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.switchovers++
	return nil
}

func TestClusterCommands(t *testing.T) {
	tests := []struct {
		name, user, line, input string
		inCluster               bool
		wantOut, wantErr        string
		wantSwitchovers         int
	}{
		{"show", "eve", "show cluster", "", true, "node a: primary", "", 0},
		{"show json", "eve", "show cluster --json", "", true, `"role": "primary"`, "", 0},
		{"not in a cluster", "eve", "show cluster", "", false, "", "not in a cluster", 0},
		{"switchover confirmed", "root", "cluster switchover", "switchover\r", true, "switchover done", "", 1},
		{"switchover not confirmed", "root", "cluster switchover", "no\r", true, "", "", 0},
		{"switchover needs admin", "op", "cluster switchover", "switchover\r", true, "", "admin", 0},
		{"switchover alone", "root", "cluster switchover", "switchover\r", false, "", "not in a cluster", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCmdEnv(t)
			term := &scriptTerm{in: strings.NewReader(tc.input)}
			var sys System = e.sys
			cf := &clusterFake{fakeSystem: e.sys}
			if tc.inCluster {
				sys = cf
			}
			c, err := New(Options{Terminal: term, Config: e.store, System: sys})
			if err != nil {
				t.Fatal(err)
			}
			c.in = startInput(term)
			defer func() { close(c.in.stop); <-c.in.done }()
			site, _ := e.store.Site()
			u, _ := site.User(tc.user)
			s := &session{c: c, user: u, actor: "console:" + tc.user}
			if _, err := s.execLine(context.Background(), tc.line); err != nil {
				t.Fatalf("%s: %v", tc.line, err)
			}
			out := term.take()
			if tc.wantErr != "" && !strings.Contains(out, "error") || !strings.Contains(out, tc.wantErr) {
				t.Fatalf("output %q, want an error saying %q", out, tc.wantErr)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("output %q, want %q", out, tc.wantOut)
			}
			if strings.HasSuffix(tc.line, "--json") && !json.Valid([]byte(out)) {
				t.Fatalf("not JSON: %q", out)
			}
			if cf.switchovers != tc.wantSwitchovers {
				t.Fatalf("%d switchovers, want %d", cf.switchovers, tc.wantSwitchovers)
			}
		})
	}
}
