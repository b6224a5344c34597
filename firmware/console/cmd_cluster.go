package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/config"
)

// ClusterSystem is what a System that is a data node of an appliance pair
// adds for "show cluster" and "cluster switchover". The console type-asserts
// its System to it; without it, or when Cluster fails, "show cluster" shows
// the configured settings instead and "cluster switchover" says "not in a
// cluster".
type ClusterSystem interface {
	// Cluster returns the pair's state as this node sees it.
	Cluster(ctx context.Context) (ClusterReport, error)
	// Switchover performs a planned make-before-break role swap and returns
	// once the standby is the primary.
	Switchover(ctx context.Context) error
}

// PairingSystem is what a System adds to keep this node's pairing bundle
// (the pair's CA, this node's certificate and key, the heartbeat key) for
// "cluster pair", "cluster import" and "show cluster". The console
// type-asserts its System to it; without it those commands refuse.
type PairingSystem interface {
	// SavePairing stores b as this node's bundle, crash-safely, replacing
	// any other. It takes effect at the next start of nvrd.
	SavePairing(b *pairing.Bundle) error
	// Pairing returns the stored bundle; an error wrapping
	// pairing.ErrNoBundle when the node has none.
	Pairing() (*pairing.Bundle, error)
}

// ClusterReport is the pair's state: Text as "show cluster" prints it, and
// Data, the same state, for --json.
type ClusterReport struct {
	Text string
	Data any
}

// errNotInCluster: the System is not a node of a pair.
var errNotInCluster = errors.New("not in a cluster (the pair is not running on this appliance)")

// errNoPairingStore: the System cannot keep a pairing bundle.
var errNoPairingStore = errors.New("this system cannot keep a pairing bundle")

// restartNote ends every cluster settings change.
const restartNote = "takes effect after a restart (reboot)"

// maxBundleLines bounds a pasted bundle (a P-256 bundle is about 40 lines).
const maxBundleLines = 200

// bundleEnd is the last line of a bundle made by pairing.Bundle.Marshal.
const bundleEnd = "-----END EC PRIVATE KEY-----"

// serialBaud is the console line's speed, for the paste-time estimate.
const serialBaud = 115200

// clusterShowCommand is "show cluster".
func clusterShowCommand() *command {
	return &command{name: "cluster", args: "[--json]", summary: "the appliance pair: roles, epoch, links, mirror lag, versions (or the configured settings)",
		role: config.RoleViewer, json: true, run: runShowCluster}
}

// clusterCommand is the "cluster" group.
func clusterCommand() *command {
	return &command{name: "cluster", summary: "the appliance pair", subs: []*command{
		{name: "switchover", summary: "planned role swap: the standby records before the primary stops (asks to confirm)",
			help: "The standby starts every camera session and commits frames, then takes leadership; the\nold primary stops recording only after the new epoch is committed. No frame is lost.",
			role: config.RoleAdmin, run: runClusterSwitchover},
		{name: "pair", args: "--nodes THIS,OTHER,WITNESS", summary: "make the pair's keys: saves this node's, prints the other two (asks to confirm)",
			help: "Makes a new pair CA, a certificate and key per node and the heartbeat key. This node's\n" +
				"bundle is saved here (replacing any pairing); the other data node's and the witness's\n" +
				"are printed for you to paste: on the other appliance's console with \"cluster import\",\n" +
				"on the witness saved to a file for \"nvrd cluster import --config DIR FILE\". The witness\n" +
				"is the last of --nodes.",
			role: config.RoleAdmin, flags: map[string]flagKind{"nodes": valueFlag}, run: runClusterPair},
		{name: "import", summary: "paste this node's pairing bundle made by \"cluster pair\" on the other appliance",
			role: config.RoleAdmin, run: runClusterImport},
		{name: "set", args: "--node ID --peers ID=HOST:PORT,ID=HOST:PORT,ID=HOST:PORT/witness --heartbeat NAME=LOCAL/PEER[,NAME=LOCAL/PEER] [--vip ADDR --vip-iface IF] [--mirror-bind ADDR]",
			summary: "the pair's settings (replaces them all but enabled; needs a restart)",
			help: "--node is this appliance's ID; --peers the three voters, this node included, the witness\n" +
				"marked /witness; --heartbeat the heartbeat paths to the other data node as\n" +
				"name=local-ip:port/peer-ip:port, the dedicated link first, several separated by commas;\n" +
				"--vip the service address the primary holds, answered on --vip-iface; --mirror-bind the\n" +
				"mirror receiver's listen address (default :7445). Takes effect after a restart.",
			role: config.RoleAdmin, flags: map[string]flagKind{"node": valueFlag, "peers": valueFlag, "heartbeat": valueFlag,
				"vip": valueFlag, "vip-iface": valueFlag, "mirror-bind": valueFlag}, run: runClusterSet},
		{name: "enable", summary: "join the pair at the next start", role: config.RoleAdmin, run: runClusterEnable},
		{name: "disable", summary: "record alone from the next start", role: config.RoleAdmin, run: runClusterDisable},
	}}
}

func (s *session) clusterSystem() (ClusterSystem, error) {
	cs, ok := s.c.opts.System.(ClusterSystem)
	if !ok {
		return nil, errNotInCluster
	}
	return cs, nil
}

func (s *session) pairingSystem() (PairingSystem, error) {
	ps, ok := s.c.opts.System.(PairingSystem)
	if !ok {
		return nil, errNoPairingStore
	}
	return ps, nil
}

func runShowCluster(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	notRunning := errNotInCluster
	if cs, err := s.clusterSystem(); err == nil {
		r, err := cs.Cluster(ctx)
		if err == nil {
			if a.has("json") {
				return s.printJSON(r.Data)
			}
			s.c.printf("%s", r.Text)
			return nil
		}
		notRunning = err
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	v := configuredCluster{Running: false, Reason: notRunning.Error(), Settings: site.Cluster, Bundle: s.bundleInfo(), Alarms: []Alarm{}}
	if st, err := s.c.opts.System.Status(ctx); err == nil {
		for _, al := range st.Alarms {
			if al.Source == "cluster" {
				v.Alarms = append(v.Alarms, al) // why an enabled pair did not start
			}
		}
	}
	if a.has("json") {
		return s.printJSON(v)
	}
	s.c.printf("%s", v.text())
	return nil
}

// configuredCluster is "show cluster" without a running pair.
type configuredCluster struct {
	Running  bool           `json:"running"`
	Reason   string         `json:"reason"`
	Settings config.Cluster `json:"settings"`
	Bundle   bundleInfo     `json:"bundle"`
	// Alarms are the pair's (source "cluster"), e.g. why it did not start.
	Alarms []Alarm `json:"alarms"`
}

// bundleInfo says whether a pairing bundle is present; never the keys.
type bundleInfo struct {
	Present bool   `json:"present"`
	Node    string `json:"node,omitempty"`
	// CASHA256 fingerprints the pair's CA: equal on all three members.
	CASHA256 string `json:"ca_sha256,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (s *session) bundleInfo() bundleInfo {
	ps, err := s.pairingSystem()
	if err != nil {
		return bundleInfo{Error: err.Error()}
	}
	b, err := ps.Pairing()
	switch {
	case errors.Is(err, pairing.ErrNoBundle):
		return bundleInfo{}
	case err != nil:
		return bundleInfo{Error: err.Error()}
	}
	sum := sha256.Sum256(b.CACert.Raw)
	return bundleInfo{Present: true, Node: b.NodeID, CASHA256: hex.EncodeToString(sum[:])}
}

func (v configuredCluster) text() string {
	var b strings.Builder
	c := v.Settings
	state := "disabled"
	if c.Enabled {
		state = "enabled"
	}
	fmt.Fprintf(&b, "cluster: %s in the configuration; %s\n", state, sanitize(v.Reason))
	fmt.Fprintf(&b, "  this node: %s\n", orNone(c.NodeID))
	if len(c.Members) > 0 {
		b.WriteString("  members:")
		for _, m := range c.Members {
			fmt.Fprintf(&b, " %s=%s", m.ID, m.Addr)
			if m.Witness {
				b.WriteString("/witness")
			}
		}
		b.WriteString("\n")
	} else {
		b.WriteString("  members: none\n")
	}
	if len(c.Heartbeats) == 0 {
		b.WriteString("  heartbeat: none\n")
	}
	for _, h := range c.Heartbeats {
		fmt.Fprintf(&b, "  heartbeat %s: %s -> %s\n", h.Name, h.Local, h.Peer)
	}
	if c.VIP != "" {
		fmt.Fprintf(&b, "  vip: %s on %s\n", c.VIP, c.VIPInterface)
	} else {
		b.WriteString("  vip: none\n")
	}
	if c.MirrorBind != "" {
		fmt.Fprintf(&b, "  mirror bind: %s\n", c.MirrorBind)
	} else {
		b.WriteString("  mirror bind: :7445 (default)\n")
	}
	for _, al := range v.Alarms {
		fmt.Fprintf(&b, "  alarm (%s): %s\n", al.Severity, sanitize(al.Message))
	}
	switch bi := v.Bundle; {
	case bi.Present:
		fmt.Fprintf(&b, "  pairing bundle: present, node %s, CA sha256 %s\n", bi.Node, bi.CASHA256[:16])
	case bi.Error != "":
		fmt.Fprintf(&b, "  pairing bundle: unreadable: %s\n", sanitize(bi.Error))
	default:
		b.WriteString("  pairing bundle: none (cluster pair, or cluster import)\n")
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func runClusterSwitchover(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	cs, err := s.clusterSystem()
	if err != nil {
		return err
	}
	s.c.printf("Swap the roles of the pair? The standby starts recording before this primary stops.\n")
	if err := s.confirm(ctx, `Type "switchover" to confirm: `, "switchover"); err != nil {
		return err
	}
	s.c.log.Warn("switchover from the console", "user", s.user.Name)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cs.Switchover(ctx); err != nil {
		return fmt.Errorf("switchover: %w", err)
	}
	s.c.printf("switchover done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// parseNodes reads --nodes THIS,OTHER,WITNESS.
func parseNodes(v string) ([]string, error) {
	ids := strings.Split(v, ",")
	if len(ids) != 3 {
		return nil, fmt.Errorf("--nodes: want THIS,OTHER,WITNESS (three IDs), got %d", len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if err := config.ValidateUserName(id); err != nil {
			return nil, fmt.Errorf("--nodes: %q: an ID is 1-32 characters of a-z, 0-9, - and _, not starting with a digit or -", id)
		}
		if seen[id] {
			return nil, fmt.Errorf("--nodes: %q given twice", id)
		}
		seen[id] = true
	}
	return ids, nil
}

func runClusterPair(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	v, ok := a.get("nodes")
	if !ok {
		return usagef("--nodes is required")
	}
	ids, err := parseNodes(v)
	if err != nil {
		return usagef("%v", err)
	}
	ps, err := s.pairingSystem()
	if err != nil {
		return err
	}
	if site, err := s.c.opts.Config.Site(); err == nil && site.Cluster.NodeID != "" && site.Cluster.NodeID != ids[0] {
		s.c.printf("warning: the configuration names this node %q, not %q (see cluster set)\n", site.Cluster.NodeID, ids[0])
	}
	if old, err := ps.Pairing(); err == nil {
		s.c.printf("This node is already paired (as %s): a new pairing replaces its keys; the other two\nmembers must then import their new bundles too.\n", old.NodeID)
	}
	s.c.printf("Make new keys for %s (this node), %s and the witness %s?\n", ids[0], ids[1], ids[2])
	if err := s.confirm(ctx, `Type "pair" to confirm: `, "pair"); err != nil {
		return err
	}
	bs, err := pairing.Pair(ids)
	if err != nil {
		return fmt.Errorf("pair: %w", err)
	}
	texts := make([][]byte, 3)
	for i, b := range bs {
		if texts[i], err = b.Marshal(); err != nil {
			return fmt.Errorf("pair: %w", err)
		}
	}
	if err := ps.SavePairing(bs[0]); err != nil {
		return fmt.Errorf("pair: save this node's bundle: %w: nothing changed", err)
	}
	s.c.log.Warn("pairing made on the console", "user", s.user.Name, "nodes", strings.Join(ids, ","))
	s.c.printf("saved this node's bundle (%s); %s\n\n", ids[0], restartNote)
	where := []string{"", "on the console of appliance " + ids[1] + `: log in as an admin, type "cluster import" and paste it`,
		"on the witness " + ids[2] + `: save it as a file there (` + ids[2] + `.pem) and run "nvrd cluster import --config DIR ` + ids[2] + `.pem",\nDIR being the witness's --config (or --data) directory`}
	for i := 1; i < 3; i++ {
		s.c.printf("Bundle for %s (%d bytes, %.1f s at %d baud): copy everything from BEGIN to the last END line\n%s:\n\n%s\n",
			ids[i], len(texts[i]), float64(len(texts[i])*10)/serialBaud, serialBaud, where[i], texts[i])
	}
	s.c.printf("These bundles hold private keys: do not keep copies once imported.\n")
	return nil
}

// readBundle reads a pasted bundle: up to its last END line or an empty
// line (other than the one ending a PEM block's headers), at most
// maxBundleLines lines, without echo.
func (s *session) readBundle(ctx context.Context) ([]byte, int, error) {
	var b strings.Builder
	lines := 0
	afterHeader := false
	for {
		line, err := s.c.ed.readLine(ctx, "", readOpts{silent: true, idle: s.c.opts.IdleTimeout})
		switch {
		case errors.Is(err, errInterrupted), errors.Is(err, errLogout):
			return nil, 0, errCancelled
		case errors.Is(err, errLineTooLong):
			return nil, 0, errors.New("import: a pasted line is too long (not a bundle): nothing saved")
		case err != nil:
			return nil, 0, err
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "" && lines == 0:
			continue // blank lines before the bundle
		case line == "" && !afterHeader:
			return []byte(b.String()), lines, nil
		}
		// The blank line after a PEM block's headers ("Node: a") is part
		// of the bundle; any other ends the paste.
		afterHeader = line != "" && !strings.HasPrefix(line, "-----") && strings.Contains(line, ": ")
		b.WriteString(line)
		b.WriteByte('\n')
		lines++
		if line == bundleEnd {
			break
		}
		if lines >= maxBundleLines {
			return nil, 0, fmt.Errorf("import: more than %d lines without %q: nothing saved", maxBundleLines, bundleEnd)
		}
	}
	return []byte(b.String()), lines, nil
}

func runClusterImport(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	ps, err := s.pairingSystem()
	if err != nil {
		return err
	}
	s.c.printf("Paste this node's bundle (from \"cluster pair\" on the other appliance), then an empty\nline; it is not echoed. Ctrl-C cancels.\n")
	data, lines, err := s.readBundle(ctx)
	if err != nil {
		return err
	}
	b, err := pairing.ParseBundle(data)
	if err != nil {
		return fmt.Errorf("import: not a complete pairing bundle (%d lines read; garbled or truncated paste?): %v: nothing saved", lines, err)
	}
	if site, err := s.c.opts.Config.Site(); err == nil && site.Cluster.NodeID != "" && site.Cluster.NodeID != b.NodeID {
		s.c.printf("warning: the bundle is for node %q but the configuration names this node %q (see cluster set)\n", b.NodeID, site.Cluster.NodeID)
	}
	if err := ps.SavePairing(b); err != nil {
		return fmt.Errorf("import: save: %w: nothing changed", err)
	}
	s.c.log.Warn("pairing bundle imported on the console", "user", s.user.Name, "node", b.NodeID)
	sum := sha256.Sum256(b.CACert.Raw)
	s.c.printf("read %d lines; saved the bundle of node %s (pair CA sha256 %s); %s\n", lines, b.NodeID, hex.EncodeToString(sum[:8]), restartNote)
	return nil
}

// parsePeers reads ID=HOST:PORT,ID=HOST:PORT,ID=HOST:PORT/witness.
func parsePeers(v string) ([]config.ClusterMember, error) {
	var out []config.ClusterMember
	for _, p := range strings.Split(v, ",") {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not ID=HOST:PORT[/witness]", p)
		}
		m := config.ClusterMember{ID: id, Addr: addr}
		if a, ok := strings.CutSuffix(addr, "/witness"); ok {
			m.Addr, m.Witness = a, true
		}
		out = append(out, m)
	}
	return out, nil
}

// parseHeartbeats reads NAME=LOCAL/PEER[,NAME=LOCAL/PEER].
func parseHeartbeats(v string) ([]config.HeartbeatPath, error) {
	var out []config.HeartbeatPath
	for _, h := range strings.Split(v, ",") {
		name, rest, ok := strings.Cut(h, "=")
		local, peer, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || name == "" || local == "" || peer == "" {
			return nil, fmt.Errorf("--heartbeat: %q is not NAME=LOCAL-IP:PORT/PEER-IP:PORT", h)
		}
		out = append(out, config.HeartbeatPath{Name: name, Local: local, Peer: peer})
	}
	return out, nil
}

func runClusterSet(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	for _, f := range []string{"node", "peers", "heartbeat"} {
		if !a.has(f) {
			return usagef("--%s is required", f)
		}
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	c := config.Cluster{Enabled: site.Cluster.Enabled}
	c.NodeID, _ = a.get("node")
	c.VIP, _ = a.get("vip")
	c.VIPInterface, _ = a.get("vip-iface")
	c.MirrorBind, _ = a.get("mirror-bind")
	peers, _ := a.get("peers")
	if c.Members, err = parsePeers(peers); err != nil {
		return usagef("%v", err)
	}
	hbs, _ := a.get("heartbeat")
	if c.Heartbeats, err = parseHeartbeats(hbs); err != nil {
		return usagef("%v", err)
	}
	ch, err := s.apply(config.SetCluster{Cluster: c})
	if err != nil {
		return err
	}
	s.c.printf("%s; %s\n", ch.What, restartNote)
	if !c.Enabled {
		s.c.printf("the pair is disabled: \"cluster enable\" to join it at the next start\n")
	}
	return nil
}

func runClusterEnable(_ context.Context, s *session, a parsedArgs) error {
	return s.setClusterEnabled(a, true)
}

func runClusterDisable(_ context.Context, s *session, a parsedArgs) error {
	return s.setClusterEnabled(a, false)
}

func (s *session) setClusterEnabled(a parsedArgs, on bool) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	c := site.Cluster
	c.Enabled = on
	if on {
		if err := config.ValidateCluster(c); err != nil {
			return fmt.Errorf("cannot enable the pair: %w (see cluster set)", err)
		}
	}
	if _, err := s.apply(config.SetCluster{Cluster: c}); err != nil {
		return err
	}
	if !on {
		s.c.printf("the pair is disabled: this appliance records alone; %s\n", restartNote)
		return nil
	}
	s.c.printf("the pair is enabled as node %s; %s\n", c.NodeID, restartNote)
	if bi := s.bundleInfo(); !bi.Present {
		s.c.printf("warning: no pairing bundle yet (cluster pair, or cluster import): until there is one,\nthe appliance records alone and raises an alarm\n")
	} else if bi.Node != c.NodeID {
		s.c.printf("warning: the pairing bundle is for node %q, not %q: the appliance records alone until they match\n", bi.Node, c.NodeID)
	}
	return nil
}
