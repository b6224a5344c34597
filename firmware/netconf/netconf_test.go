package netconf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNamespace makes a private, unnamed network namespace holding a veth
// link "lan0" and returns a netlink handle into it. The namespace (and every
// link in it) disappears when the test ends.
func newNamespace(t *testing.T) *netlink.Handle {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespace tests need root, and CI runs as root")
		}
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // creates and enters it
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return to the original namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	// A veth pair (the dummy link type is not built into every kernel).
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "peer0"}); err != nil {
		t.Fatalf("add veth link: %v", err)
	}
	return h
}

func addrs(t *testing.T, h *netlink.Handle, name string) []string {
	t.Helper()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range list {
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.String())
		}
	}
	sort.Strings(out)
	return out
}

func TestApplyInNamespace(t *testing.T) {
	h := newNamespace(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	a, err := NewApplier(h, resolv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Interfaces: []Interface{
			{Name: "lan0", MTU: 1400, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")}},
		},
		Gateway4: netip.MustParseAddr("192.0.2.1"),
		Gateway6: netip.MustParseAddr("2001:db8::1"),
		DNS:      []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		Search:   []string{"site.example"},
	}
	if err := a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(addrs(t, h, "lan0"), " "); got != "192.0.2.10/24 2001:db8::10/64" {
		t.Errorf("lan0 addresses %q", got)
	}
	link, _ := h.LinkByName("lan0")
	if link.Attrs().MTU != 1400 {
		t.Errorf("MTU %d", link.Attrs().MTU)
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var gws []string
	for _, r := range routes {
		if r.Gw != nil && (r.Dst == nil || r.Dst.IP.IsUnspecified()) {
			gws = append(gws, r.Gw.String())
		}
	}
	sort.Strings(gws)
	if strings.Join(gws, " ") != "192.0.2.1 2001:db8::1" {
		t.Errorf("default gateways %v", gws)
	}
	data, err := os.ReadFile(resolv)
	if err != nil || !strings.Contains(string(data), "nameserver 192.0.2.53\n") || !strings.Contains(string(data), "search site.example\n") {
		t.Errorf("resolv.conf %q (%v)", data, err)
	}

	// Re-applying a changed configuration converges: the old address goes,
	// the new one comes, the gateway moves; applying twice is a no-op.
	cfg.Interfaces[0].Addresses = []netip.Prefix{netip.MustParsePrefix("192.0.2.11/24"), netip.MustParsePrefix("2001:db8::10/64")}
	cfg.Gateway4 = netip.MustParseAddr("192.0.2.254")
	for i := 0; i < 2; i++ {
		if err := a.Apply(cfg); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	if got := strings.Join(addrs(t, h, "lan0"), " "); got != "192.0.2.11/24 2001:db8::10/64" {
		t.Errorf("after change, lan0 addresses %q", got)
	}
}

// TestApplyVLAN needs a kernel with 802.1Q support: Debian's kernel (the
// appliance image) has it as a module; a host kernel built without it answers
// EOPNOTSUPP, and only then is the test skipped, saying so.
func TestApplyVLAN(t *testing.T) {
	h := newNamespace(t)
	a, err := NewApplier(h, "")
	if err != nil {
		t.Fatal(err)
	}
	err = a.Apply(Config{Interfaces: []Interface{
		{Name: "lan0.20", VLAN: 20, Parent: "lan0", Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.5/24")}},
	}})
	if errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("this kernel has no 802.1Q VLAN support: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(addrs(t, h, "lan0.20"), " "); got != "198.51.100.5/24" {
		t.Errorf("VLAN addresses %q", got)
	}
	if v, err := h.LinkByName("lan0.20"); err != nil || v.(*netlink.Vlan).VlanId != 20 {
		t.Errorf("VLAN link: %v %+v", err, v)
	}
}

func TestApplyRejectsInvalidAndChangesNothing(t *testing.T) {
	h := newNamespace(t)
	a, err := NewApplier(h, "")
	if err != nil {
		t.Fatal(err)
	}
	bad := []Config{
		{Interfaces: []Interface{{Name: "lan0", MTU: 100}}},
		{Interfaces: []Interface{{Name: "lan0.5000", VLAN: 5000, Parent: "lan0"}}},
		{Interfaces: []Interface{{Name: "lan0.7", VLAN: 7}}},
		{Interfaces: []Interface{{Name: "lan0", DHCP: true, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}}},
		{Interfaces: []Interface{{Name: "lan0"}, {Name: "lan0"}}},
		{Interfaces: []Interface{{Name: "a very long interface name"}}},
		{Gateway4: netip.MustParseAddr("2001:db8::1")},
		{Interfaces: []Interface{{Name: "lan0", Addresses: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}},
	}
	for i, cfg := range bad {
		if err := a.Apply(cfg); err == nil {
			t.Errorf("config %d accepted: %+v", i, cfg)
		}
	}
	if got := addrs(t, h, "lan0"); len(got) != 0 {
		t.Errorf("invalid configs changed addresses: %v", got)
	}
	link, _ := h.LinkByName("lan0")
	if link.Attrs().MTU == 100 {
		t.Error("invalid MTU applied")
	}
	if err := a.Apply(Config{Interfaces: []Interface{{Name: "missing0"}}}); err == nil || !strings.Contains(err.Error(), "missing0") {
		t.Errorf("missing interface: %v", err)
	}
}

// TestNewApplierOwnHandle opens the applier's own netlink socket as nvrd run
// --appliance does, in a namespace of its own, and applies an address. Only
// the route family is opened: the appliance kernel has no xfrm_user, and a
// socket of every family failed there ("protocol not supported"); this host
// kernel has it, so here the test shows the own-socket path works, and the
// QEMU suite shows it on the appliance kernel.
func TestNewApplierOwnHandle(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespace tests need root, and CI runs as root")
		}
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	defer netns.Set(orig)
	local, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if err := local.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "own0"}, PeerName: "own1"}); err != nil {
		t.Fatal(err)
	}
	a, err := NewApplier(nil, "")
	if err != nil {
		t.Fatalf("NewApplier(nil): %v", err)
	}
	if err := a.Apply(Config{Interfaces: []Interface{{Name: "own0", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.20/24")}}}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(addrs(t, local, "own0"), " "); got != "192.0.2.20/24" {
		t.Errorf("own0 addresses %q", got)
	}
}
