package main

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       config
		err        string
	}{
		{name: "defaults", line: "console=ttyS0 panic=-1",
			want: config{perm: "/dev/vda", data: "/dev/vdb", board: "qemu", log: "/dev/console"}},
		{name: "all keys", line: "nvr.perm=/dev/sda1 nvr.data=/dev/md0 nvr.board=nvr4 nvr.log=/dev/ttyS1 nvr.args=--test-faults,--log-level=debug nvr.net=eth0,10.0.2.15/24,10.0.2.2",
			want: config{perm: "/dev/sda1", data: "/dev/md0", board: "nvr4", log: "/dev/ttyS1", args: []string{"--test-faults", "--log-level=debug"},
				net: &netConfig{ifname: "eth0", addr: netip.MustParsePrefix("10.0.2.15/24"), gateway: netip.MustParseAddr("10.0.2.2")}}},
		{name: "no gateway", line: "nvr.net=eth1,fd00::5/64",
			want: config{perm: "/dev/vda", data: "/dev/vdb", board: "qemu", log: "/dev/console",
				net: &netConfig{ifname: "eth1", addr: netip.MustParsePrefix("fd00::5/64")}}},
		{name: "raid", line: "nvr.raid=/dev/vdb,/dev/vdc",
			want: config{perm: "/dev/vda", data: "/dev/md0", board: "qemu", log: "/dev/console", raid: []string{"/dev/vdb", "/dev/vdc"}}},
		{name: "raid of one", line: "nvr.raid=/dev/vdb", err: "two members"},
		{name: "bad address", line: "nvr.net=eth0,10.0.2.15", err: "nvr.net"},
		{name: "bad gateway", line: "nvr.net=eth0,10.0.2.15/24,gw", err: "gateway"},
		{name: "no interface", line: "nvr.net=,10.0.2.15/24", err: "want IF"},
		{name: "disk not in /dev", line: "nvr.data=/tmp/x", err: "not a /dev path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCmdline(tc.line)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v (net %+v), want %+v", got, got.net, tc.want)
			}
		})
	}
}

func TestNvrdArgs(t *testing.T) {
	cfg, err := parseCmdline("nvr.args=--test-faults")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(nvrdArgs(cfg), " ")
	want := "/bin/nvrd run --appliance --config /perm/nvr/config.db --data /data --console /dev/ttyS0 --api :443 --api-tls-dir /perm/nvr/tls --board qemu --boot-count /perm/nvr/bootcount --test-faults"
	if got != want {
		t.Fatalf("nvrd args\n got %s\nwant %s", got, want)
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("console=ttyS0 nvr.net=eth0,10.0.2.15/24,10.0.2.2 nvr.args=--a,--b")
	f.Add("nvr.perm=/dev/vda nvr.data=/dev/md0")
	f.Fuzz(func(t *testing.T, line string) {
		cfg, err := parseCmdline(line)
		if err != nil {
			return
		}
		if !strings.HasPrefix(cfg.perm, "/dev/") || !strings.HasPrefix(cfg.data, "/dev/") {
			t.Fatalf("accepted disks %q %q", cfg.perm, cfg.data)
		}
		if cfg.net != nil && !cfg.net.addr.IsValid() {
			t.Fatalf("accepted an invalid address: %+v", cfg.net)
		}
	})
}
