package console

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/config"
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

// pairingFake is a System that keeps a pairing bundle in memory, and is a
// ClusterSystem whose pair is not running (as an appliance alone).
type pairingFake struct {
	*fakeSystem
	mu      sync.Mutex
	bundle  *pairing.Bundle
	saves   int
	saveErr error
}

func (f *pairingFake) SavePairing(b *pairing.Bundle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.saveErr != nil {
		return f.saveErr
	}
	f.bundle = b
	f.saves++
	return nil
}

func (f *pairingFake) Pairing() (*pairing.Bundle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bundle == nil {
		return nil, pairing.ErrNoBundle
	}
	return f.bundle, nil
}

func (f *pairingFake) Cluster(context.Context) (ClusterReport, error) {
	return ClusterReport{}, errors.New("not in a cluster (fake)")
}

func (f *pairingFake) Switchover(context.Context) error { return errors.New("not in a cluster (fake)") }

// runScripted runs line as user on a console over sys, with input typed.
func runScripted(t *testing.T, e *cmdEnv, sys System, user, line, input string) string {
	t.Helper()
	term := &scriptTerm{in: strings.NewReader(input)}
	c, err := New(Options{Terminal: term, Config: e.store, System: sys})
	if err != nil {
		t.Fatal(err)
	}
	c.in = startInput(term)
	defer func() { close(c.in.stop); <-c.in.done }()
	site, _ := e.store.Site()
	u, _ := site.User(user)
	s := &session{c: c, user: u, actor: "console:" + user}
	if _, err := s.execLine(context.Background(), line); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return term.take()
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
		{"not in a cluster shows the settings", "eve", "show cluster", "", false, "cluster: disabled in the configuration; not in a cluster", "", 0},
		{"not in a cluster json", "eve", "show cluster --json", "", false, `"running": false`, "", 0},
		{"switchover confirmed", "root", "cluster switchover", "switchover\r", true, "switchover done", "", 1},
		{"switchover not confirmed", "root", "cluster switchover", "no\r", true, "", "", 0},
		{"switchover needs admin", "op", "cluster switchover", "switchover\r", true, "", "admin", 0},
		{"switchover alone", "root", "cluster switchover", "switchover\r", false, "", "not in a cluster", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCmdEnv(t)
			var sys System = e.sys
			cf := &clusterFake{fakeSystem: e.sys}
			if tc.inCluster {
				sys = cf
			}
			out := runScripted(t, e, sys, tc.user, tc.line, tc.input)
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

// bundlesIn returns the bundles printed in out, in order.
func bundlesIn(t *testing.T, out string) []*pairing.Bundle {
	t.Helper()
	out = strings.ReplaceAll(out, "\r\n", "\n")
	var bs []*pairing.Bundle
	for {
		i := strings.Index(out, "-----BEGIN NVR PAIR-----")
		if i < 0 {
			return bs
		}
		j := strings.Index(out[i:], bundleEnd)
		if j < 0 {
			t.Fatalf("bundle without its end in %q", out[i:])
		}
		b, err := pairing.ParseBundle([]byte(out[i : i+j+len(bundleEnd)+1]))
		if err != nil {
			t.Fatalf("printed bundle: %v", err)
		}
		bs = append(bs, b)
		out = out[i+j:]
	}
}

func TestClusterPair(t *testing.T) {
	e := newCmdEnv(t)
	pf := &pairingFake{fakeSystem: e.sys}
	out := runScripted(t, e, pf, "root", "cluster pair --nodes a,b,w", "pair\r")
	if pf.saves != 1 || pf.bundle == nil || pf.bundle.NodeID != "a" {
		t.Fatalf("saved %d bundles (%+v), want node a's; output %q", pf.saves, pf.bundle, out)
	}
	bs := bundlesIn(t, out)
	if len(bs) != 2 || bs[0].NodeID != "b" || bs[1].NodeID != "w" {
		t.Fatalf("printed %d bundles, want b's and w's: %q", len(bs), out)
	}
	for _, b := range bs {
		if !b.CACert.Equal(pf.bundle.CACert) {
			t.Errorf("bundle %s has another CA than the saved one", b.NodeID)
		}
	}
	own, err := pf.bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ownKey := string(own[strings.Index(string(own), "-----BEGIN EC PRIVATE KEY-----"):])
	if strings.Contains(strings.ReplaceAll(out, "\r\n", "\n"), strings.Split(ownKey, "\n")[1]) {
		t.Error("this node's private key was printed")
	}
	for _, want := range []string{`"cluster import"`, `"nvrd cluster import --config DIR w.pem"`, "takes effect after a restart", "115200 baud"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// A bundle must paste over a 115200 baud line in well under a second
	// (10 bits a byte): P-256 keys keep it near 2 KB.
	for _, b := range bs {
		m, _ := b.Marshal()
		if len(m) > 4096 {
			t.Errorf("bundle of %s is %d bytes, want at most 4096", b.NodeID, len(m))
		}
		t.Logf("bundle of %s: %d bytes, %.2f s at 115200 baud", b.NodeID, len(m), float64(len(m)*10)/115200)
	}
}

func TestClusterPairRefused(t *testing.T) {
	tests := []struct {
		name, user, line, input, wantErr string
		saveErr                          error
	}{
		{"viewer", "eve", "cluster pair --nodes a,b,w", "pair\r", "admin", nil},
		{"operator", "op", "cluster pair --nodes a,b,w", "pair\r", "admin", nil},
		{"not confirmed", "root", "cluster pair --nodes a,b,w", "no\r", "not confirmed", nil},
		{"no nodes", "root", "cluster pair", "pair\r", "--nodes is required", nil},
		{"two nodes", "root", "cluster pair --nodes a,b", "pair\r", "three IDs", nil},
		{"repeated node", "root", "cluster pair --nodes a,b,a", "pair\r", "given twice", nil},
		{"bad node", "root", "cluster pair --nodes a,9b,w", "pair\r", "an ID is", nil},
		{"save fails", "root", "cluster pair --nodes a,b,w", "pair\r", "disk full", errors.New("disk full")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCmdEnv(t)
			pf := &pairingFake{fakeSystem: e.sys, saveErr: tc.saveErr}
			out := runScripted(t, e, pf, tc.user, tc.line, tc.input)
			if tc.name != "not confirmed" && !strings.Contains(out, "error") || !strings.Contains(out, tc.wantErr) {
				t.Fatalf("output %q, want an error saying %q", out, tc.wantErr)
			}
			if pf.saves != 0 || strings.Contains(out, "BEGIN NVR PAIR") {
				t.Fatalf("saved %d bundles or printed one: %q", pf.saves, out)
			}
		})
	}
	e := newCmdEnv(t)
	if out := runScripted(t, e, e.sys, "root", "cluster pair --nodes a,b,w", "pair\r"); !strings.Contains(out, "cannot keep a pairing") {
		t.Errorf("pair on a system without a pairing store: %q", out)
	}
}

func TestClusterImport(t *testing.T) {
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bs[1].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	crlf := strings.ReplaceAll(good, "\n", "\r\n")
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	truncated := strings.Join(lines[:len(lines)/2], "\n") + "\n\n"
	noEnd := strings.Join(lines[:len(lines)-1], "\n") + "\n\n"
	flipped := strings.Replace(good, lines[len(lines)-3], strings.ToUpper(lines[len(lines)-3]), 1)
	tests := []struct {
		name, user, input, wantOut, wantErr string
		wantNode                            string
	}{
		{"good, ends at the END line", "root", good, "saved the bundle of node b", "", "b"},
		{"good with CRLF and blank lines before", "root", "\r\n\r\n" + crlf, "saved the bundle of node b", "", "b"},
		{"good, then an empty line", "root", good + "\n", "takes effect after a restart", "", "b"},
		{"truncated", "root", truncated, "", "not a complete pairing bundle", ""},
		{"no end marker", "root", noEnd, "", "not a complete pairing bundle", ""},
		{"garbage", "root", "hello\nworld\n\n", "", "not a complete pairing bundle", ""},
		{"garbled key", "root", flipped, "", "nothing saved", ""},
		{"long line", "root", strings.Repeat("x", 5000) + "\n", "", "too long", ""},
		{"cancelled", "root", lines[0] + "\n\x03", "", "", ""},
		{"operator", "op", good, "", "admin", ""},
		{"viewer", "eve", good, "", "admin", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCmdEnv(t)
			pf := &pairingFake{fakeSystem: e.sys}
			out := runScripted(t, e, pf, tc.user, "cluster import", tc.input)
			if tc.wantErr != "" && !strings.Contains(out, "error") || !strings.Contains(out, tc.wantErr) {
				t.Fatalf("output %q, want an error saying %q", out, tc.wantErr)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("output %q, want %q", out, tc.wantOut)
			}
			if strings.Count(out, "error") > 1 {
				t.Errorf("more than one error: %q", out)
			}
			if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, lines[len(lines)-2]) {
				t.Errorf("the key was echoed: %q", out)
			}
			switch {
			case tc.wantNode == "" && pf.saves != 0:
				t.Errorf("saved %d bundles, want none", pf.saves)
			case tc.wantNode != "" && (pf.saves != 1 || pf.bundle.NodeID != tc.wantNode):
				t.Errorf("saved %d bundles (%v), want node %s's", pf.saves, pf.bundle, tc.wantNode)
			}
		})
	}
}

func TestClusterSettings(t *testing.T) {
	const set = "cluster set --node a --peers a=10.0.0.1:7100,b=10.0.0.2:7100,w=10.0.0.3:7100/witness " +
		"--heartbeat dedicated=10.78.0.1:7200/10.78.0.2:7200,lan=10.0.0.1:7201/10.0.0.2:7201"
	tests := []struct {
		name, user string
		lines      []string
		wantOut    string
		wantErr    string
		check      func(t *testing.T, c config.Cluster)
	}{
		{"set", "root", []string{set + " --vip 10.0.0.100 --vip-iface eth0 --mirror-bind :7445"}, "takes effect after a restart", "", func(t *testing.T, c config.Cluster) {
			if c.Enabled || c.NodeID != "a" || len(c.Members) != 3 || !c.Members[2].Witness || len(c.Heartbeats) != 2 || c.Heartbeats[0].Name != "dedicated" ||
				c.VIP != "10.0.0.100" || c.VIPInterface != "eth0" || c.MirrorBind != ":7445" {
				t.Errorf("cluster = %+v", c)
			}
		}},
		{"set then enable", "root", []string{set, "cluster enable"}, "enabled as node a; takes effect after a restart", "", func(t *testing.T, c config.Cluster) {
			if !c.Enabled {
				t.Error("not enabled")
			}
		}},
		{"enable warns without a bundle", "root", []string{set, "cluster enable"}, "no pairing bundle yet", "", nil},
		{"enable, set keeps enabled, disable", "root", []string{set, "cluster enable", set + " --vip 2001:db8::1 --vip-iface eth1", "cluster disable"}, "records alone", "", func(t *testing.T, c config.Cluster) {
			if c.Enabled || c.VIP != "2001:db8::1" {
				t.Errorf("cluster = %+v", c)
			}
		}},
		{"enable unset", "root", []string{"cluster enable"}, "", "cluster.node_id", nil},
		{"set needs peers", "root", []string{"cluster set --node a --heartbeat x=10.0.0.1:1/10.0.0.2:1"}, "", "--peers is required", nil},
		{"set two peers", "root", []string{"cluster set --node a --peers a=10.0.0.1:7100,w=10.0.0.3:7100/witness --heartbeat x=10.0.0.1:1/10.0.0.2:1"}, "", "cluster.members", nil},
		{"set no witness", "root", []string{strings.Replace(set, "/witness", "", 1)}, "", "exactly one witness", nil},
		{"set node is witness", "root", []string{strings.Replace(set, "--node a", "--node w", 1)}, "", "is the witness", nil},
		{"set bad heartbeat", "root", []string{strings.Replace(set, "/10.78.0.2:7200", "", 1)}, "", "NAME=LOCAL-IP:PORT/PEER-IP:PORT", nil},
		{"set vip without iface", "root", []string{set + " --vip 10.0.0.100"}, "", "cluster.vip_interface", nil},
		{"set bad vip", "root", []string{set + " --vip nope --vip-iface eth0"}, "", "cluster.vip", nil},
		{"set bad mirror bind", "root", []string{set + " --mirror-bind nvr:7445"}, "", "cluster.mirror_bind", nil},
		{"set by an operator", "op", []string{set}, "", "admin", nil},
		{"enable by a viewer", "eve", []string{"cluster enable"}, "", "admin", nil},
		{"disable by an operator", "op", []string{"cluster disable"}, "", "admin", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCmdEnv(t)
			pf := &pairingFake{fakeSystem: e.sys}
			var out string
			for _, l := range tc.lines {
				out = runScripted(t, e, pf, tc.user, l, "")
			}
			if tc.wantErr != "" && !strings.Contains(out, "error") || !strings.Contains(out, tc.wantErr) {
				t.Fatalf("output %q, want an error saying %q", out, tc.wantErr)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("output %q, want %q", out, tc.wantOut)
			}
			site, _ := e.store.Site()
			if tc.check != nil {
				tc.check(t, site.Cluster)
			} else if tc.wantErr != "" && len(tc.lines) == 1 && len(site.Cluster.Members) != 0 {
				t.Errorf("refused change stored: %+v", site.Cluster)
			}
		})
	}
}

// TestShowClusterConfigured: without a running pair, "show cluster" shows
// the settings and the bundle's presence, never its keys.
func TestShowClusterConfigured(t *testing.T) {
	e := newCmdEnv(t)
	pf := &pairingFake{fakeSystem: e.sys}
	runScripted(t, e, pf, "root", "cluster set --node a --peers a=10.0.0.1:7100,b=10.0.0.2:7100,w=10.0.0.3:7100/witness --heartbeat lan=10.0.0.1:7201/10.0.0.2:7201", "")
	out := runScripted(t, e, pf, "eve", "show cluster", "")
	for _, want := range []string{"disabled in the configuration", "this node: a", "w=10.0.0.3:7100/witness", "heartbeat lan: 10.0.0.1:7201 -> 10.0.0.2:7201", "pairing bundle: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("show cluster lacks %q: %q", want, out)
		}
	}
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	pf.bundle = bs[0]
	for _, line := range []string{"show cluster", "show cluster --json"} {
		out = runScripted(t, e, pf, "eve", line, "")
		if !strings.Contains(out, "present") || strings.Contains(out, "PRIVATE") || strings.Contains(out, "BEGIN") {
			t.Errorf("%s with a bundle: %q", line, out)
		}
	}
	var v configuredCluster
	if err := json.Unmarshal([]byte(out), &v); err != nil || !v.Bundle.Present || v.Bundle.Node != "a" || v.Settings.NodeID != "a" || len(v.Bundle.CASHA256) != 64 {
		t.Errorf("json = %+v %v", v, err)
	}
	// Why an enabled pair did not start: its alarm, not the others.
	e.sys.mu.Lock()
	e.sys.status.Alarms = append(e.sys.status.Alarms, Alarm{Severity: "critical", Source: "cluster", Message: "the pair is enabled but cannot start: no bundle"})
	e.sys.mu.Unlock()
	out = runScripted(t, e, pf, "eve", "show cluster", "")
	if !strings.Contains(out, "alarm (critical): the pair is enabled but cannot start: no bundle") || strings.Contains(out, "input lost") {
		t.Errorf("show cluster with the pair's alarm: %q", out)
	}
}

// FuzzClusterSet: "cluster set"'s --peers and --heartbeat parsers never
// panic; what they accept writes back to the same text, and the site
// validation accepts it or says which field is wrong.
func FuzzClusterSet(f *testing.F) {
	f.Add("a=10.0.0.1:7100,b=10.0.0.2:7100,w=10.0.0.3:7100/witness", "dedicated=10.78.0.1:7200/10.78.0.2:7200,lan=10.0.0.1:7201/10.0.0.2:7201")
	f.Add("a=[2001:db8::1]:7100,b=h.example:1/witness", "x=[::1]:1/[::2]:2")
	f.Add("=,/witness", "a=/")
	f.Add("a==b/witness/witness", "n=1.2.3.4:5/6.7.8.9:0,")
	f.Fuzz(func(t *testing.T, peers, hbs string) {
		ms, perr := parsePeers(peers)
		hs, herr := parseHeartbeats(hbs)
		if perr == nil {
			var back []string
			for _, m := range ms {
				s := m.ID + "=" + m.Addr
				if m.Witness {
					s += "/witness"
				}
				back = append(back, s)
			}
			if strings.Join(back, ",") != peers {
				t.Fatalf("peers %q written back as %q", peers, strings.Join(back, ","))
			}
		}
		if herr == nil {
			var back []string
			for _, h := range hs {
				back = append(back, h.Name+"="+h.Local+"/"+h.Peer)
			}
			if strings.Join(back, ",") != hbs {
				t.Fatalf("heartbeats %q written back as %q", hbs, strings.Join(back, ","))
			}
		}
		if perr != nil || herr != nil || len(ms) == 0 {
			return
		}
		err := config.ValidateCluster(config.Cluster{Enabled: true, NodeID: ms[0].ID, Members: ms, Heartbeats: hs})
		var ve *config.ValidationError
		if err != nil && (!errors.As(err, &ve) || !strings.HasPrefix(ve.Field, "cluster")) {
			t.Fatalf("validation error %v is not a cluster field's", err)
		}
	})
}
