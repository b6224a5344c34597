package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// config is the boot configuration read from the kernel command line.
type config struct {
	perm, data string
	boot       string   // "" runs without A/B slots
	update     string   // a disk holding bundle.nvrfw to install at boot, or ""
	agent      string   // test only: a helper started before nvrd, or ""
	raid       []string // RAID1 members assembled as /dev/md0, or none
	board      string
	log        string
	net        *netConfig
	args       []string
}

// netConfig is a static address for one interface.
type netConfig struct {
	ifname  string
	addr    netip.Prefix
	gateway netip.Addr // invalid: no default route
}

// parseCmdline reads the nvr.* keys of a kernel command line; other words
// are ignored.
func parseCmdline(line string) (config, error) {
	cfg := config{perm: "/dev/vda", data: "/dev/vdb", board: "qemu", log: "/dev/console"}
	dataSet := false
	for _, w := range strings.Fields(line) {
		key, val, ok := strings.Cut(w, "=")
		if !ok || !strings.HasPrefix(key, "nvr.") {
			continue
		}
		switch key {
		case "nvr.perm":
			cfg.perm = val
		case "nvr.data":
			cfg.data, dataSet = val, true
		case "nvr.boot":
			cfg.boot = val
		case "nvr.update":
			cfg.update = val
		case "nvr.agent":
			cfg.agent = val
		case "nvr.raid":
			cfg.raid = strings.Split(val, ",")
			if !dataSet {
				cfg.data = "/dev/md0"
			}
		case "nvr.board":
			cfg.board = val
		case "nvr.log":
			cfg.log = val
		case "nvr.args":
			if val != "" {
				cfg.args = strings.Split(val, ",")
			}
		case "nvr.net":
			n, err := parseNet(val)
			if err != nil {
				return config{}, err
			}
			cfg.net = &n
		}
	}
	if len(cfg.raid) == 1 {
		return config{}, fmt.Errorf("nvr.raid=%s: a RAID1 needs at least two members", cfg.raid[0])
	}
	if cfg.perm == "" || cfg.data == "" {
		return config{}, fmt.Errorf("nvr.perm and nvr.data need a device (%q, %q)", cfg.perm, cfg.data)
	}
	for _, d := range append([]string{cfg.perm, cfg.data, cfg.boot, cfg.update}, cfg.raid...) {
		if d != "" && !strings.HasPrefix(d, "/dev/") {
			return config{}, fmt.Errorf("disk %q is not a /dev path", d)
		}
	}
	return cfg, nil
}

// parseNet parses IF,ADDR/LEN[,GW].
func parseNet(v string) (netConfig, error) {
	parts := strings.Split(v, ",")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return netConfig{}, fmt.Errorf("nvr.net=%q: want IF,ADDR/LEN[,GATEWAY]", v)
	}
	p, err := netip.ParsePrefix(parts[1])
	if err != nil {
		return netConfig{}, fmt.Errorf("nvr.net=%q: %w", v, err)
	}
	n := netConfig{ifname: parts[0], addr: p}
	if len(parts) == 3 {
		if n.gateway, err = netip.ParseAddr(parts[2]); err != nil {
			return netConfig{}, fmt.Errorf("nvr.net=%q: gateway: %w", v, err)
		}
	}
	return n, nil
}
