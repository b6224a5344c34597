package cli

import (
	"flag"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

func TestRunClusterFlags(t *testing.T) {
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := bs[0].Save(dir); err != nil {
		t.Fatal(err)
	}
	peers := "a=10.0.0.1:7100,b=10.0.0.2:7100,w=10.0.0.3:7100/witness"
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantNil bool
	}{
		{"alone", nil, "", true},
		{"peers without a dir", []string{"--cluster-peers", peers}, "need --cluster-dir", false},
		{"no heartbeat", []string{"--cluster-dir", dir, "--cluster-peers", peers}, "--heartbeat", false},
		{"bad heartbeat", []string{"--cluster-dir", dir, "--cluster-peers", peers, "--heartbeat", "lan=10.0.0.1:7201"}, "want name=", false},
		{"two peers", []string{"--cluster-dir", dir, "--cluster-peers", "a=10.0.0.1:7100,b=10.0.0.2:7100", "--heartbeat", "lan=10.0.0.1:7201/10.0.0.2:7201"}, "three voters", false},
		{"vip without iface", []string{"--cluster-dir", dir, "--cluster-peers", peers, "--heartbeat", "lan=10.0.0.1:7201/10.0.0.2:7201", "--vip", "10.0.0.100"}, "--vip-iface", false},
		{"bad vip", []string{"--cluster-dir", dir, "--cluster-peers", peers, "--heartbeat", "lan=10.0.0.1:7201/10.0.0.2:7201", "--vip", "nope", "--vip-iface", "eth0"}, "--vip", false},
		{"no bundle", []string{"--cluster-dir", t.TempDir(), "--cluster-peers", peers, "--heartbeat", "lan=10.0.0.1:7201/10.0.0.2:7201"}, "--cluster-dir", false},
		{"full", []string{"--cluster-dir", dir, "--cluster-peers", peers, "--heartbeat", "dedicated=10.78.0.1:7200/10.78.0.2:7200",
			"--heartbeat", "lan=10.0.0.1:7201/10.0.0.2:7201", "--vip", "10.0.0.100", "--vip-iface", "eth0", "--mirror-bind", ":7500"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			var c clusterFlags
			c.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			o, err := c.options()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (o == nil) != tc.wantNil {
				t.Fatalf("options %+v", o)
			}
			if o != nil && (o.ID != "a" || len(o.Peers) != 3 || len(o.Heartbeat) != 2 || o.Heartbeat[0].Name != "dedicated" ||
				o.Heartbeat[1].Peer != "10.0.0.2:7201" || o.VIP.String() != "10.0.0.100" || o.MirrorBind != ":7500") {
				t.Fatalf("options %+v", o)
			}
		})
	}
}
