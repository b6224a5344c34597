package appliance

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// pairConfig writes a configuration database whose pair is enabled as node
// "a" (peers on free loopback ports that never answer), with cams, and
// returns its path.
func pairConfig(t *testing.T, cams ...config.Camera) string {
	t.Helper()
	raft := freeAddrs(t, "tcp", 4)
	hb := freeAddrs(t, "udp", 2)
	path := filepath.Join(t.TempDir(), "config.db")
	cfg, err := config.Open(config.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	c := config.Cluster{Enabled: true, NodeID: "a", MirrorBind: raft[3],
		Members:    []config.ClusterMember{{ID: "a", Addr: raft[0]}, {ID: "b", Addr: raft[1]}, {ID: "w", Addr: raft[2], Witness: true}},
		Heartbeats: []config.HeartbeatPath{{Name: "lan", Local: hb[0], Peer: hb[1]}}}
	ms := []config.Mutation{config.SetCluster{Cluster: c}}
	for _, cam := range cams {
		ms = append(ms, config.AddCamera{Camera: cam})
	}
	for _, m := range ms {
		if _, err := cfg.Apply("test", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := cfg.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// consoleSave saves b the way the console's "cluster pair"/"cluster import"
// does: through the appliance's PairingSystem.
func consoleSave(t *testing.T, cfgPath string, b *pairing.Bundle) {
	t.Helper()
	s := &system{a: &App{opts: Options{ConfigPath: cfgPath}, hub: events.New(events.Options{})}}
	if err := s.SavePairing(b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pairing()
	if err != nil || got.NodeID != b.NodeID {
		t.Fatalf("Pairing after save = %v, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(ClusterDir(cfgPath), pairing.BundleFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bundle file: %v %v, want mode 0600", st, err)
	}
}

func TestPairingSystemEmpty(t *testing.T) {
	s := &system{a: &App{opts: Options{ConfigPath: filepath.Join(t.TempDir(), "config.db")}, hub: events.New(events.Options{})}}
	if _, err := s.Pairing(); !errors.Is(err, pairing.ErrNoBundle) {
		t.Errorf("Pairing of an unpaired node = %v, want ErrNoBundle", err)
	}
	s = &system{a: &App{hub: events.New(events.Options{})}}
	if err := s.SavePairing(&pairing.Bundle{}); err == nil {
		t.Error("SavePairing without a configuration succeeded")
	}
}

// TestClusterFromConfigStandby: an appliance whose configuration enables the
// pair, with the bundle saved the console's way and no cluster options
// (nvrd run without --cluster-dir), comes up as that node of the pair;
// alone, without a quorum, it is the standby.
func TestClusterFromConfigStandby(t *testing.T) {
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := pairConfig(t)
	consoleSave(t, cfgPath, bs[0])
	addr, stop := startApp(t, Options{DataDir: formatStore(t, 64<<20), ConfigPath: cfgPath, APITokens: map[string]string{"tok": "test"}, Version: "9.9.9"})
	defer stop()
	c := client{t: t, base: "http://" + addr, token: "tok"}
	var cs api.ClusterStatus
	waitUntil(t, "the node answers as a standby", 15*time.Second, func() bool {
		code, _, body := c.get("/api/v1/cluster")
		return code == 200 && json.Unmarshal(body, &cs) == nil && cs.Role == "standby"
	})
	if cs.Node != "a" || len(cs.Members) != 3 || cs.Mirror.Side != "receiver" {
		t.Errorf("cluster = %+v", cs)
	}
	var st api.Status
	c.getJSON("/api/v1/status", &st)
	for _, al := range st.Alarms {
		if strings.Contains(al.Message, "cannot start") {
			t.Errorf("alarm on a node that started: %+v", al)
		}
	}
	// raft's state lives beside the bundle.
	if ents, err := os.ReadDir(ClusterDir(cfgPath)); err != nil || len(ents) < 2 {
		t.Errorf("cluster dir holds %d entries (%v), want the bundle and the node's state", len(ents), err)
	}
}

// TestClusterFromConfigNotStarted: a pair enabled in the configuration that
// cannot start (no bundle, another node's, a damaged one) leaves the
// appliance recording alone, with an alarm saying why.
func TestClusterFromConfigNotStarted(t *testing.T) {
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"cam1": {Video: camsim.H264}})
	tests := []struct {
		name    string
		prepare func(t *testing.T, cfgPath string)
		want    string
	}{
		{"no bundle", func(*testing.T, string) {}, "no pairing bundle"},
		{"another node's bundle", func(t *testing.T, p string) { consoleSave(t, p, bs[1]) }, `node "b"'s`},
		{"damaged bundle", func(t *testing.T, p string) {
			if err := os.MkdirAll(ClusterDir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ClusterDir(p), pairing.BundleFile), []byte("-----BEGIN NVR PAIR-----\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "bundle incomplete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := pairConfig(t, config.Camera{Name: "cam1", URL: sim.URL("cam1"), Transport: config.TransportTCP, Enabled: true})
			tc.prepare(t, cfgPath)
			addr, stop := startApp(t, Options{DataDir: formatStore(t, 64<<20), ConfigPath: cfgPath, APITokens: map[string]string{"tok": "test"}})
			defer stop()
			c := client{t: t, base: "http://" + addr, token: "tok"}
			if code, _, body := c.get("/api/v1/cluster"); code != 404 {
				t.Errorf("cluster: %d %s, want 404 (alone)", code, body)
			}
			var st api.Status
			c.getJSON("/api/v1/status", &st)
			found := false
			for _, al := range st.Alarms {
				found = found || strings.Contains(al.Message, "cannot start") && strings.Contains(al.Message, tc.want)
			}
			if !found {
				t.Errorf("alarms %+v, want one saying the pair cannot start: %s", st.Alarms, tc.want)
			}
			waitUntil(t, "cam1 recording alone", 10*time.Second, func() bool {
				code, _, body := c.get("/api/v1/cameras")
				return code == 200 && strings.Contains(string(body), `"cam1"`)
			})
		})
	}
}

// consoleLogin logs in as the first-run admin and returns the prompt.
func consoleLogin(t *testing.T, tm *term) string {
	t.Helper()
	tm.expect(`created user "admin" with password `, 20*time.Second)
	pw := strings.TrimSpace(tm.expect("\r\n", 5*time.Second))
	tm.expect("login: ", 5*time.Second)
	tm.typeLine("admin")
	tm.expect("Password: ", 5*time.Second)
	tm.typeLine(pw)
	tm.expect("New password: ", 20*time.Second)
	tm.typeLine("integrator-pw-1")
	tm.expect("Retype new password: ", 5*time.Second)
	tm.typeLine("integrator-pw-1")
	const prompt = "admin@nvr> "
	tm.expect(prompt, 20*time.Second)
	return prompt
}

// TestConsolePairsTheAppliances is the integrator's pairing with nothing but
// the consoles: on appliance a, "cluster set", "cluster enable" and "cluster
// pair" (which prints b's and the witness's bundles); on appliance b,
// "cluster import" of the pasted bundle. After a restart, a runs as node a
// of the pair (the standby, as its peers never answer here).
func TestConsolePairsTheAppliances(t *testing.T) {
	raft := freeAddrs(t, "tcp", 4)
	hb := freeAddrs(t, "udp", 2)
	cfgA := filepath.Join(t.TempDir(), "config.db")
	optsA := Options{DataDir: formatStore(t, 32<<20), ConfigPath: cfgA, Version: "test", APITokens: map[string]string{"tok": "test"}}
	tm, _, stop := runAppliance(t, optsA)
	prompt := consoleLogin(t, tm)

	tm.typeLine("cluster set --node a --peers a=" + raft[0] + ",b=" + raft[1] + ",w=" + raft[2] + "/witness --heartbeat lan=" + hb[0] + "/" + hb[1] + " --mirror-bind " + raft[3])
	if out := tm.expect(prompt, 10*time.Second); !strings.Contains(out, "takes effect after a restart") {
		t.Fatalf("cluster set: %q", out)
	}
	tm.typeLine("cluster enable")
	if out := tm.expect(prompt, 10*time.Second); !strings.Contains(out, "no pairing bundle yet") {
		t.Fatalf("cluster enable: %q", out)
	}
	tm.typeLine("cluster pair --nodes a,b,w")
	tm.expect(`Type "pair" to confirm: `, 10*time.Second)
	tm.typeLine("pair")
	out := strings.ReplaceAll(tm.expect(prompt, 20*time.Second), "\r\n", "\n")
	i := strings.Index(out, "-----BEGIN NVR PAIR-----")
	j := strings.Index(out, "-----END EC PRIVATE KEY-----")
	if i < 0 || j < i {
		t.Fatalf("cluster pair printed no bundle: %q", out)
	}
	bundleB := out[i : j+len("-----END EC PRIVATE KEY-----")]
	if !strings.Contains(bundleB, "Node: b") || strings.Count(out, "-----BEGIN NVR PAIR-----") != 2 {
		t.Fatalf("want b's bundle first and the witness's: %q", out)
	}
	tm.typeLine("show cluster")
	if out := tm.expect(prompt, 10*time.Second); !strings.Contains(out, "pairing bundle: present, node a") || !strings.Contains(out, "enabled in the configuration") {
		t.Fatalf("show cluster after pairing: %q", out)
	}
	stop()

	// Appliance b: paste its bundle on its console.
	cfgB := filepath.Join(t.TempDir(), "config.db")
	tmB, _, stopB := runAppliance(t, Options{DataDir: formatStore(t, 32<<20), ConfigPath: cfgB, Version: "test"})
	promptB := consoleLogin(t, tmB)
	tmB.typeLine("cluster import")
	tmB.expect("Ctrl-C cancels.", 10*time.Second)
	for _, l := range strings.Split(bundleB, "\n") {
		tmB.typeLine(l)
	}
	out = tmB.expect(promptB, 10*time.Second)
	if !strings.Contains(out, "saved the bundle of node b") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("cluster import: %q", out)
	}
	stopB()
	if b, err := pairing.Load(ClusterDir(cfgB)); err != nil || b.NodeID != "b" {
		t.Fatalf("b's saved bundle: %v %v", b, err)
	}

	// a restarts as node a of the pair.
	addr, stopA := startApp(t, optsA)
	defer stopA()
	c := client{t: t, base: "http://" + addr, token: "tok"}
	var cs api.ClusterStatus
	waitUntil(t, "a answers as a node of the pair", 15*time.Second, func() bool {
		code, _, body := c.get("/api/v1/cluster")
		return code == 200 && json.Unmarshal(body, &cs) == nil && cs.Role == "standby"
	})
	if cs.Node != "a" || len(cs.Members) != 3 {
		t.Errorf("cluster = %+v", cs)
	}
}

// TestClusterOptionsWinOverConfig: given cluster options (nvrd run's
// --cluster-dir flags) are used as they are, even when the configuration
// enables a pair that could not start (no bundle there): no alarm.
func TestClusterOptionsWinOverConfig(t *testing.T) {
	bs, err := pairing.Pair([]string{"x", "y", "z"})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := pairConfig(t) // node "a", no bundle
	dir := t.TempDir()
	if err := bs[0].Save(dir); err != nil {
		t.Fatal(err)
	}
	o, err := ClusterFromConfig(config.Cluster{Enabled: true, NodeID: "x",
		Members:    []config.ClusterMember{{ID: "x", Addr: freeAddrs(t, "tcp", 1)[0]}, {ID: "y", Addr: "127.0.0.1:1"}, {ID: "z", Addr: "127.0.0.1:2", Witness: true}},
		Heartbeats: []config.HeartbeatPath{{Name: "lan", Local: freeAddrs(t, "udp", 1)[0], Peer: "127.0.0.1:3"}}, MirrorBind: freeAddrs(t, "tcp", 1)[0]},
		dir)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := startApp(t, Options{DataDir: formatStore(t, 64<<20), ConfigPath: cfgPath, Cluster: o, APITokens: map[string]string{"tok": "test"}})
	defer stop()
	c := client{t: t, base: "http://" + addr, token: "tok"}
	var cs api.ClusterStatus
	waitUntil(t, "node x answers", 15*time.Second, func() bool {
		code, _, body := c.get("/api/v1/cluster")
		return code == 200 && json.Unmarshal(body, &cs) == nil && cs.Node == "x"
	})
	var st api.Status
	c.getJSON("/api/v1/status", &st)
	for _, al := range st.Alarms {
		if al.Source == "cluster" {
			t.Errorf("alarm from the configuration's pair while the options rule: %+v", al)
		}
	}
}

// TestRepairingKeepsTheOldPairsStateAside: importing a bundle of another
// pair (a new CA) moves the old pair's raft log and mirror positions aside;
// re-importing the same pair's bundle keeps them.
func TestRepairingKeepsTheOldPairsStateAside(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.db")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := &system{a: &App{opts: Options{ConfigPath: cfgPath, Now: func() time.Time { return now }}, hub: events.New(events.Options{})}}
	dir := ClusterDir(cfgPath)
	first, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SavePairing(first[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mirror-state.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePairing(first[0]); err != nil { // the same pair again
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft")); err != nil {
		t.Fatalf("re-importing the same pair's bundle moved its state: %v", err)
	}
	second, err := pairing.Pair([]string{"a", "c", "w"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SavePairing(second[0]); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"raft", "mirror-state.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still in place after a new pair's bundle: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".replaced-20261125T120000Z")); err != nil {
			t.Errorf("%s not kept aside: %v", name, err)
		}
	}
	if b, err := s.Pairing(); err != nil || !b.CACert.Equal(second[0].CACert) {
		t.Errorf("bundle after re-pairing: %v", err)
	}
}
