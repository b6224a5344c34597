package config

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pairCluster is a valid, enabled node "a" of a pair.
func pairCluster() Cluster {
	return Cluster{Enabled: true, NodeID: "a",
		Members:    []ClusterMember{{ID: "a", Addr: "10.0.0.1:7100"}, {ID: "b", Addr: "10.0.0.2:7100"}, {ID: "w", Addr: "witness.example:7100", Witness: true}},
		Heartbeats: []HeartbeatPath{{Name: "dedicated", Local: "10.78.0.1:7200", Peer: "10.78.0.2:7200"}, {Name: "lan", Local: "10.0.0.1:7201", Peer: "10.0.0.2:7201"}},
		VIP:        "10.0.0.100", VIPInterface: "eth0", MirrorBind: ":7445"}
}

func TestValidateCluster(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *Cluster)
		field string
	}{
		{"valid", func(*Cluster) {}, ""},
		{"disabled and empty", func(c *Cluster) { *c = Cluster{} }, ""},
		{"disabled, partly set", func(c *Cluster) { c.Enabled, c.Heartbeats = false, nil }, ""},
		{"ipv6 vip", func(c *Cluster) { c.VIP = "2001:db8::100" }, ""},
		{"no vip", func(c *Cluster) { c.VIP, c.VIPInterface = "", "" }, ""},
		{"mirror bind ip", func(c *Cluster) { c.MirrorBind = "10.78.0.1:7445" }, ""},
		{"bad node id", func(c *Cluster) { c.NodeID = "A B" }, "cluster.node_id"},
		{"node not a member", func(c *Cluster) { c.NodeID = "c" }, "cluster.node_id"},
		{"node is the witness", func(c *Cluster) { c.NodeID = "w" }, "cluster.node_id"},
		{"two members", func(c *Cluster) { c.Members = c.Members[:2] }, "cluster.members"},
		{"no witness", func(c *Cluster) { c.Members[2].Witness = false }, "cluster.members"},
		{"two witnesses", func(c *Cluster) { c.Members[1].Witness = true }, "cluster.members"},
		{"duplicate id", func(c *Cluster) { c.Members[1].ID = "a" }, "cluster.members[1].id"},
		{"bad member id", func(c *Cluster) { c.Members[1].ID = "9b" }, "cluster.members[1].id"},
		{"member without port", func(c *Cluster) { c.Members[1].Addr = "10.0.0.2" }, "cluster.members[1].addr"},
		{"member bad host", func(c *Cluster) { c.Members[2].Addr = "bad host:7100" }, "cluster.members[2].addr"},
		{"heartbeat bad name", func(c *Cluster) { c.Heartbeats[0].Name = "Dedicated link" }, "cluster.heartbeats[0].name"},
		{"heartbeat duplicate", func(c *Cluster) { c.Heartbeats[1].Name = "dedicated" }, "cluster.heartbeats[1].name"},
		{"heartbeat host name", func(c *Cluster) { c.Heartbeats[0].Local = "nvr-a:7200" }, "cluster.heartbeats[0].local"},
		{"heartbeat no port", func(c *Cluster) { c.Heartbeats[0].Peer = "10.78.0.2" }, "cluster.heartbeats[0].peer"},
		{"heartbeat same ends", func(c *Cluster) { c.Heartbeats[0].Peer = c.Heartbeats[0].Local }, "cluster.heartbeats[0]"},
		{"too many heartbeats", func(c *Cluster) {
			for i := range 4 {
				c.Heartbeats = append(c.Heartbeats, HeartbeatPath{Name: "x" + string(rune('a'+i)), Local: "10.0.0.1:1", Peer: "10.0.0.2:1"})
			}
		}, "cluster.heartbeats"},
		{"bad vip", func(c *Cluster) { c.VIP = "10.0.0.300" }, "cluster.vip"},
		{"multicast vip", func(c *Cluster) { c.VIP = "224.0.0.1" }, "cluster.vip"},
		{"vip without iface", func(c *Cluster) { c.VIPInterface = "" }, "cluster.vip_interface"},
		{"iface without vip", func(c *Cluster) { c.VIP = "" }, "cluster.vip_interface"},
		{"bad iface", func(c *Cluster) { c.VIPInterface = "eth 0" }, "cluster.vip_interface"},
		{"bad mirror bind", func(c *Cluster) { c.MirrorBind = "host:7445" }, "cluster.mirror_bind"},
		{"mirror bind no port", func(c *Cluster) { c.MirrorBind = ":0" }, "cluster.mirror_bind"},
		{"enabled without members", func(c *Cluster) { c.Members = nil }, "cluster.members"},
		{"enabled without heartbeats", func(c *Cluster) { c.Heartbeats = nil }, "cluster.heartbeats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pairCluster()
			c.Members = append([]ClusterMember(nil), c.Members...)
			c.Heartbeats = append([]HeartbeatPath(nil), c.Heartbeats...)
			tt.edit(&c)
			checkField(t, ValidateCluster(c), tt.field)
		})
	}
}

// TestSetClusterRestart: the settings are stored, take effect at restart,
// are audited, survive a reopen, and an invalid change stores nothing.
func TestSetClusterRestart(t *testing.T) {
	s, path := newTestStore(t)
	ch, err := s.Apply("console:root", SetCluster{Cluster: pairCluster()})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Effect != Restart {
		t.Errorf("effect %s, want restart", ch.Effect)
	}
	bad := pairCluster()
	bad.Members = bad.Members[:2]
	if _, err := s.Apply("console:root", SetCluster{Cluster: bad}); err == nil {
		t.Error("two members accepted")
	}
	e, err := s.Audit(0, 1)
	if err != nil || len(e) != 1 || e[0].Kind != "cluster.set" || !strings.Contains(e[0].What, "w=witness.example:7100/witness") {
		t.Errorf("audit = %+v %v", e, err)
	}
	s.Close()
	s = openTest(t, path)
	site, err := s.Site()
	if err != nil {
		t.Fatal(err)
	}
	got, want := site.Cluster, pairCluster()
	if got.NodeID != want.NodeID || len(got.Members) != 3 || got.Members[2] != want.Members[2] || len(got.Heartbeats) != 2 ||
		got.Heartbeats[0] != want.Heartbeats[0] || got.VIP != want.VIP || got.VIPInterface != want.VIPInterface || got.MirrorBind != want.MirrorBind || !got.Enabled {
		t.Errorf("reopened cluster = %+v, want %+v", got, want)
	}
}

// TestClusterExportImport: an export keeps the cluster settings and an
// import restores them.
func TestClusterExportImport(t *testing.T) {
	s, _ := newTestStore(t)
	mustApply(t, s, SetCluster{Cluster: pairCluster()})
	var buf bytes.Buffer
	if err := s.Export(&buf); err != nil {
		t.Fatal(err)
	}
	site, err := ParseExport(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if site.Cluster.NodeID != "a" || len(site.Cluster.Members) != 3 || len(site.Cluster.Heartbeats) != 2 || site.Cluster.VIP != "10.0.0.100" {
		t.Errorf("exported cluster = %+v", site.Cluster)
	}
	s2, _ := newTestStore(t)
	if _, err := s2.Import("console:root", "test", bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	got, _ := s2.Site()
	if !got.Cluster.Enabled || got.Cluster.Members[1].Addr != "10.0.0.2:7100" || got.Cluster.Heartbeats[1].Name != "lan" {
		t.Errorf("imported cluster = %+v", got.Cluster)
	}
}

// TestMigrateClusterV4: a schema-3 database's placeholder values (even an
// enabled one) become disabled, empty settings.
func TestMigrateClusterV4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	s := openTest(t, path)
	mustApply(t, s, AddCamera{Camera: lobby()})
	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keySchema, []byte("3")); err != nil {
			return err
		}
		return tx.Bucket(bucketSettings).Put([]byte("cluster"), []byte(`{"enabled":true,"node_name":"a","peers":["192.0.2.2:7000"],"witness":"w:7000"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	site, err := s.Site()
	if err != nil {
		t.Fatal(err)
	}
	if c := site.Cluster; c.Enabled || c.NodeID != "" || len(c.Members) != 0 {
		t.Errorf("migrated cluster = %+v, want disabled and empty", c)
	}
	if _, ok := site.Camera("lobby"); !ok {
		t.Error("camera lost in the migration")
	}
	// The migrated store validates and takes changes.
	mustApply(t, s, SetCluster{Cluster: pairCluster()})
}
