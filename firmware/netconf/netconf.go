// Package netconf applies the appliance's network settings to the kernel
// through netlink: static IPv4/IPv6 addresses, MTU, VLAN sub-interfaces,
// default gateways, and the resolver file. It never runs ip(8).
//
// Apply is declarative and idempotent: it makes the interfaces it is given
// match the configuration (adding and removing addresses, creating VLAN links,
// replacing default routes) and leaves every other interface alone.
//
// Concurrency: an Applier is not safe for concurrent Apply calls; the
// appliance serialises configuration changes.
package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config is the network configuration of the appliance.
type Config struct {
	Interfaces []Interface
	// Gateway4 and Gateway6 are the default routes' next hops; invalid
	// (zero) means no default route of that family is managed.
	Gateway4, Gateway6 netip.Addr
	// DNS servers and search domains written to the resolver file.
	DNS    []netip.Addr
	Search []string
}

// Interface is the configuration of one link (a NIC, or a VLAN on one).
type Interface struct {
	// Name is the link name ("eth0"); for a VLAN, the name to create
	// ("eth0.20").
	Name string
	// VLAN, when non-zero, makes this a VLAN sub-interface with this ID on
	// Parent.
	VLAN   int
	Parent string
	// MTU, when non-zero, is set on the link.
	MTU int
	// Addresses are the static addresses with prefix length; the link ends up
	// with exactly these global addresses (link-local ones are kept).
	Addresses []netip.Prefix
	// DHCP marks the interface as DHCP-managed: Apply leaves its addresses
	// alone (the DHCP client owns them).
	DHCP bool
}

// Validate checks the configuration without touching the system.
func (c Config) Validate() error {
	names := map[string]bool{}
	for _, ifc := range c.Interfaces {
		if ifc.Name == "" || len(ifc.Name) >= unix.IFNAMSIZ || strings.ContainsAny(ifc.Name, "/ \t") {
			return fmt.Errorf("interface name %q is not a valid link name", ifc.Name)
		}
		if names[ifc.Name] {
			return fmt.Errorf("interface %s configured twice", ifc.Name)
		}
		names[ifc.Name] = true
		if ifc.VLAN < 0 || ifc.VLAN > 4094 {
			return fmt.Errorf("interface %s: VLAN ID %d outside 1-4094", ifc.Name, ifc.VLAN)
		}
		if ifc.VLAN > 0 && ifc.Parent == "" {
			return fmt.Errorf("interface %s: VLAN %d needs a parent interface", ifc.Name, ifc.VLAN)
		}
		if ifc.MTU != 0 && (ifc.MTU < 576 || ifc.MTU > 9216) {
			return fmt.Errorf("interface %s: MTU %d outside 576-9216", ifc.Name, ifc.MTU)
		}
		if ifc.DHCP && len(ifc.Addresses) > 0 {
			return fmt.Errorf("interface %s: DHCP and static addresses together", ifc.Name)
		}
		for _, p := range ifc.Addresses {
			if !p.IsValid() || p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
				return fmt.Errorf("interface %s: %v is not a usable address", ifc.Name, p)
			}
		}
	}
	if c.Gateway4.IsValid() && !c.Gateway4.Is4() {
		return fmt.Errorf("IPv4 gateway %v is not IPv4", c.Gateway4)
	}
	if c.Gateway6.IsValid() && (!c.Gateway6.Is6() || c.Gateway6.Is4In6()) {
		return fmt.Errorf("IPv6 gateway %v is not IPv6", c.Gateway6)
	}
	for _, d := range c.Search {
		if d == "" || strings.ContainsAny(d, " \t\n") {
			return fmt.Errorf("search domain %q is not a domain", d)
		}
	}
	return nil
}

// Applier applies configurations through one netlink handle.
type Applier struct {
	h *netlink.Handle
	// resolvConf is the resolver file written by Apply ("" skips it).
	resolvConf string
}

// NewApplier returns an applier using h (nil: a route-family netlink socket
// in the caller's network namespace) that writes DNS settings to resolvConf
// ("" to leave DNS alone).
func NewApplier(h *netlink.Handle, resolvConf string) (*Applier, error) {
	if h == nil {
		// Only the route family: NewHandle() with no family also opens XFRM
		// and NETFILTER sockets, which a kernel without xfrm_user or
		// nfnetlink refuses ("protocol not supported").
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return nil, fmt.Errorf("netconf: open netlink: %w", err)
		}
	}
	return &Applier{h: h, resolvConf: resolvConf}, nil
}

// Apply makes the system match c. It validates first and changes nothing
// when c is invalid. On a failure half-way the error says which step failed;
// applying the previous configuration again restores it.
func (a *Applier) Apply(c Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	for _, ifc := range c.Interfaces {
		if err := a.applyInterface(ifc); err != nil {
			return fmt.Errorf("netconf: interface %s: %w", ifc.Name, err)
		}
	}
	if err := a.applyGateway(c.Gateway4, netlink.FAMILY_V4); err != nil {
		return fmt.Errorf("netconf: IPv4 gateway: %w", err)
	}
	if err := a.applyGateway(c.Gateway6, netlink.FAMILY_V6); err != nil {
		return fmt.Errorf("netconf: IPv6 gateway: %w", err)
	}
	if a.resolvConf != "" {
		if err := writeResolvConf(a.resolvConf, c.DNS, c.Search); err != nil {
			return fmt.Errorf("netconf: %w", err)
		}
	}
	return nil
}

func (a *Applier) applyInterface(ifc Interface) error {
	link, err := a.h.LinkByName(ifc.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound) && ifc.VLAN > 0:
		parent, perr := a.h.LinkByName(ifc.Parent)
		if perr != nil {
			return fmt.Errorf("VLAN parent %s: %w", ifc.Parent, perr)
		}
		vlan := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: ifc.Name, ParentIndex: parent.Attrs().Index}, VlanId: ifc.VLAN}
		if err := a.h.LinkAdd(vlan); err != nil {
			return fmt.Errorf("create VLAN %d on %s: %w", ifc.VLAN, ifc.Parent, err)
		}
		if link, err = a.h.LinkByName(ifc.Name); err != nil {
			return fmt.Errorf("find created VLAN link: %w", err)
		}
	case err != nil:
		return fmt.Errorf("find link: %w", err)
	case ifc.VLAN > 0:
		if v, ok := link.(*netlink.Vlan); !ok || v.VlanId != ifc.VLAN {
			return fmt.Errorf("link exists but is not VLAN %d", ifc.VLAN)
		}
	}
	if ifc.MTU != 0 && link.Attrs().MTU != ifc.MTU {
		if err := a.h.LinkSetMTU(link, ifc.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", ifc.MTU, err)
		}
	}
	if err := a.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if ifc.DHCP {
		return nil
	}
	return a.syncAddresses(link, ifc.Addresses)
}

// syncAddresses makes link's global addresses exactly want.
func (a *Applier) syncAddresses(link netlink.Link, want []netip.Prefix) error {
	have, err := a.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	wanted := map[netip.Prefix]bool{}
	for _, p := range want {
		wanted[p] = true
	}
	for _, addr := range have {
		p, ok := prefixOf(addr.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if wanted[p] {
			delete(wanted, p)
			continue
		}
		if err := a.h.AddrDel(link, &addr); err != nil {
			return fmt.Errorf("remove address %v: %w", p, err)
		}
	}
	add := make([]netip.Prefix, 0, len(wanted))
	for p := range wanted {
		add = append(add, p)
	}
	sort.Slice(add, func(i, j int) bool { return add[i].String() < add[j].String() })
	for _, p := range add {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once: the appliance owns its static address
		}
		if err := a.h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address %v: %w", p, err)
		}
	}
	return nil
}

// applyGateway replaces the default route of a family with one via gw. An
// invalid gw leaves the family's default routes alone (a DHCP client may own
// them).
func (a *Applier) applyGateway(gw netip.Addr, family int) error {
	if !gw.IsValid() {
		return nil
	}
	dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	if family == netlink.FAMILY_V6 {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	route := &netlink.Route{Dst: dst, Gw: gw.AsSlice()}
	if err := a.h.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %v: %w", gw, err)
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}

// writeResolvConf replaces path atomically (tmp, fsync, rename, fsync dir).
func writeResolvConf(path string, dns []netip.Addr, search []string) error {
	var b strings.Builder
	b.WriteString("# written by nvrd; change with the console's network commands\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write resolver file: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write resolver file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync resolver file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close resolver file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install resolver file: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync resolver directory: %w", err)
	}
	defer d.Close()
	return d.Sync()
}
