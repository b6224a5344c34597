package console

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
	"github.com/nvrfw/nvr/firmware/timesync"
)

func networkCommand() *command {
	return &command{name: "network", summary: "IP configuration (applied at once)", subs: []*command{
		{name: "show", args: "[--json]", summary: "configured interfaces, DNS, host name", role: config.RoleViewer, json: true, run: runNetworkShow},
		{name: "set", args: "IFACE dhcp|static [CIDR...] [--gateway IP] [--gateway6 IP] [--slaac6] [--mtu N] [--vlan ID --parent IFACE] | dns IP... | hostname NAME",
			summary: "configure an interface, the DNS servers or the host name", role: config.RoleAdmin, run: runNetworkSet,
			flags: map[string]flagKind{"gateway": valueFlag, "gateway6": valueFlag, "slaac6": boolFlag, "mtu": valueFlag, "vlan": valueFlag, "parent": valueFlag},
			help: "  network set eth0 static 192.0.2.10/24 --gateway 192.0.2.1\n  network set eth0.20 dhcp --vlan 20 --parent eth0\n" +
				"  network set dns 192.0.2.53 2001:db8::53\n  The change is validated, applied to the links, and saved only when applying worked."},
		{name: "remove", args: "IFACE", summary: "stop configuring an interface", role: config.RoleAdmin, run: runNetworkRemove},
	}}
}

func runNetworkShow(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	n := site.Network
	if a.has("json") {
		if n.Interfaces == nil {
			n.Interfaces = []config.Interface{}
		}
		return s.printJSON(n)
	}
	var b strings.Builder
	host := n.Hostname
	if host == "" {
		host = "nvr (default)"
	}
	fmt.Fprintf(&b, "hostname: %s\n", host)
	if len(n.Interfaces) == 0 {
		b.WriteString("interfaces: none configured\n")
	}
	for _, in := range n.Interfaces {
		fmt.Fprintf(&b, "%s:", in.Name)
		if in.VLAN != 0 {
			fmt.Fprintf(&b, " vlan %d on %s", in.VLAN, in.Parent)
		}
		if in.DHCP4 {
			b.WriteString(" dhcp")
		}
		if in.SLAAC6 {
			b.WriteString(" slaac6")
		}
		for _, ad := range in.Addresses {
			b.WriteString(" " + ad)
		}
		if in.Gateway4 != "" {
			b.WriteString(" gateway " + in.Gateway4)
		}
		if in.Gateway6 != "" {
			b.WriteString(" gateway6 " + in.Gateway6)
		}
		if in.MTU != 0 {
			fmt.Fprintf(&b, " mtu %d", in.MTU)
		}
		b.WriteString("\n")
	}
	dns := "none"
	if len(n.DNS) > 0 {
		dns = strings.Join(n.DNS, " ")
	}
	fmt.Fprintf(&b, "dns: %s\n", dns)
	s.c.printf("%s", b.String())
	return nil
}

func runNetworkSet(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) < 2 {
		return usagef("need what to set")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	n := site.Network
	n.Interfaces = slices.Clone(n.Interfaces)
	switch a.pos[0] {
	case "dns":
		if len(a.flags) > 0 {
			return usagef("dns takes no flags")
		}
		n.DNS = slices.Clone(a.pos[1:])
		if len(a.pos) == 2 && a.pos[1] == "none" {
			n.DNS = nil
		}
	case "hostname":
		if len(a.pos) != 2 || len(a.flags) > 0 {
			return usagef("hostname takes one NAME")
		}
		n.Hostname = a.pos[1]
	default:
		in, err := interfaceFromArgs(a)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(n.Interfaces, func(x config.Interface) bool { return x.Name == in.Name })
		if i < 0 {
			n.Interfaces = append(n.Interfaces, in)
		} else {
			n.Interfaces[i] = in
		}
	}
	return s.changeNetwork(ctx, site.Network, n)
}

func interfaceFromArgs(a parsedArgs) (config.Interface, error) {
	in := config.Interface{Name: a.pos[0], SLAAC6: a.has("slaac6")}
	switch a.pos[1] {
	case "dhcp":
		if len(a.pos) > 2 {
			return in, usagef("dhcp takes no addresses")
		}
		in.DHCP4 = true
	case "static":
		if len(a.pos) < 3 {
			return in, usagef("static needs at least one address in CIDR form (192.0.2.10/24)")
		}
		in.Addresses = slices.Clone(a.pos[2:])
	default:
		return in, usagef("say dhcp or static after the interface name, not %q", sanitize(a.pos[1]))
	}
	in.Gateway4, _ = a.get("gateway")
	in.Gateway6, _ = a.get("gateway6")
	in.Parent, _ = a.get("parent")
	for flag, dst := range map[string]*int{"mtu": &in.MTU, "vlan": &in.VLAN} {
		if v, ok := a.get(flag); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return in, usagef("--%s needs a number", flag)
			}
			*dst = n
		}
	}
	return in, nil
}

func runNetworkRemove(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("need the interface name")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	n := site.Network
	n.Interfaces = slices.DeleteFunc(slices.Clone(n.Interfaces), func(x config.Interface) bool { return x.Name == a.pos[0] })
	if len(n.Interfaces) == len(site.Network.Interfaces) {
		return fmt.Errorf("no interface %q configured", sanitize(a.pos[0]))
	}
	return s.changeNetwork(ctx, site.Network, n)
}

// changeNetwork validates n, applies it to the links, then saves it. When
// saving fails after applying, it puts old back on the links.
func (s *session) changeNetwork(ctx context.Context, old, n config.Network) error {
	if err := config.ValidateNetwork(n); err != nil {
		return err
	}
	if err := s.c.opts.System.ApplyNetwork(ctx, n); err != nil {
		return fmt.Errorf("apply network: %w (nothing saved)", err)
	}
	if _, err := s.apply(config.SetNetwork{Network: n}); err != nil {
		if rerr := s.c.opts.System.ApplyNetwork(ctx, old); rerr != nil {
			return fmt.Errorf("save network: %w; restoring the previous settings also failed: %v", err, rerr)
		}
		return fmt.Errorf("save network: %w (previous settings restored)", err)
	}
	s.c.printf("network applied and saved\n")
	return nil
}

func timeCommand() *command {
	return &command{name: "time", summary: "clock, NTP servers and time zone", subs: []*command{
		{name: "show", args: "[--json]", summary: "current time, time zone, NTP servers", role: config.RoleViewer, json: true, run: runTimeShow},
		{name: "set", args: "[--timezone ZONE] [--ntp SERVER[,SERVER...] | --ntp none] [--clock \"YYYY-MM-DD HH:MM:SS\"]",
			summary: "set the time zone, NTP servers or the clock", role: config.RoleAdmin, run: runTimeSet,
			flags: map[string]flagKind{"timezone": valueFlag, "ntp": valueFlag, "clock": valueFlag},
			help:  "  --clock is read in the configured time zone and sets the system and hardware clocks."},
	}}
}

type timeView struct {
	Now        time.Time `json:"now"`
	Timezone   string    `json:"timezone"`
	NTPServers []string  `json:"ntp_servers"`
	// Sync is the NTP client's state, when the system runs one.
	Sync *timesync.Status `json:"sync,omitempty"`
}

// timeSyncer is what a System running an NTP client adds.
type timeSyncer interface {
	TimeSync() (timesync.Status, bool)
}

func runTimeShow(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	v := timeView{Now: s.c.opts.Clock.Now().UTC(), Timezone: site.Time.Timezone, NTPServers: site.Time.NTPServers}
	if v.Timezone == "" {
		v.Timezone = "UTC"
	}
	if v.NTPServers == nil {
		v.NTPServers = []string{}
	}
	if ts, ok := s.c.opts.System.(timeSyncer); ok {
		if st, ok := ts.TimeSync(); ok {
			v.Sync = &st
		}
	}
	if a.has("json") {
		return s.printJSON(v)
	}
	ntp := "none (clock set by hand)"
	if len(v.NTPServers) > 0 {
		ntp = strings.Join(v.NTPServers, " ")
	}
	s.c.printf("time: %s\ntimezone: %s\nntp: %s\n", s.localTime(v.Now), v.Timezone, ntp)
	if st := v.Sync; st != nil && len(v.NTPServers) > 0 {
		switch {
		case st.Synced:
			s.c.printf("sync: synchronised with %s (stratum %d), offset %v, delay %v, %s, last %s\n",
				st.Server, st.Stratum, st.Offset.Round(time.Microsecond), st.Delay.Round(time.Microsecond),
				st.Adjusting, s.localTime(st.LastSync))
		case st.LastAttempt.IsZero():
			s.c.printf("sync: not yet tried\n")
		default:
			last := "never"
			if !st.LastSync.IsZero() {
				last = s.localTime(st.LastSync)
			}
			s.c.printf("sync: NOT synchronised (last answer: %s): %s\n", last, st.LastError)
		}
	}
	return nil
}

func runTimeSet(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 || len(a.flags) == 0 {
		return usagef("give --timezone, --ntp or --clock")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	t := site.Time
	changed := false
	if v, ok := a.get("timezone"); ok {
		t.Timezone, changed = v, true
	}
	if v, ok := a.get("ntp"); ok {
		t.NTPServers, changed = nil, true
		if v != "none" {
			t.NTPServers = strings.Split(v, ",")
		}
	}
	var clock time.Time
	if v, ok := a.get("clock"); ok {
		loc := time.UTC
		if t.Timezone != "" {
			if l, err := time.LoadLocation(t.Timezone); err == nil {
				loc = l
			}
		}
		if clock, err = time.ParseInLocation("2006-01-02 15:04:05", v, loc); err != nil {
			return usagef("--clock %q is not YYYY-MM-DD HH:MM:SS", sanitize(v))
		}
	}
	if changed {
		if _, err := s.apply(config.SetTime{Time: t}); err != nil {
			return err
		}
		s.c.printf("time settings saved\n")
	}
	if !clock.IsZero() {
		if err := s.c.opts.System.SetClock(ctx, clock); err != nil {
			return fmt.Errorf("set clock: %w", err)
		}
		s.c.printf("clock set to %s\n", s.localTime(clock))
	}
	return nil
}
