package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks a change refused by validation; the *ValidationError
// wrapping it says which field and why.
var ErrInvalid = errors.New("invalid configuration")

// ValidationError is a refused field: Field is a dotted path such as
// "cameras[lobby].url".
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, a ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

var (
	cameraNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	userNameRE   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	ifaceNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,14}$`)
	hostLabelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hostNameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	zoneRE       = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}$`)
)

// Limits on collection sizes, so a site stays small enough to load whole.
const (
	maxCameras    = 256
	maxUsers      = 64
	maxTokens     = 256
	maxInterfaces = 64
	maxListItems  = 16
	maxHeartbeats = 4
)

// Validate checks a whole site: every field, and uniqueness of names. It
// returns the first problem found as a *ValidationError.
func Validate(s *Site) error {
	if len(s.Cameras) > maxCameras {
		return invalid("cameras", "more than %d cameras", maxCameras)
	}
	seen := map[string]bool{}
	for _, c := range s.Cameras {
		if err := ValidateCamera(c); err != nil {
			return err
		}
		if seen[c.Name] {
			return invalid("cameras["+c.Name+"]", "duplicate camera name")
		}
		seen[c.Name] = true
	}
	if err := validateStorage(s.Storage); err != nil {
		return err
	}
	if err := ValidateNetwork(s.Network); err != nil {
		return err
	}
	if err := validateTime(s.Time); err != nil {
		return err
	}
	if err := validateUsers(s.Users); err != nil {
		return err
	}
	if err := validateTokens(s.Tokens); err != nil {
		return err
	}
	return ValidateCluster(s.Cluster)
}

// ValidateCamera checks one camera's fields (not uniqueness).
func ValidateCamera(c Camera) error {
	f := "cameras[" + c.Name + "]"
	if !cameraNameRE.MatchString(c.Name) {
		return invalid("cameras["+printable(c.Name)+"].name", "must be 1-32 characters of a-z, 0-9, - and _")
	}
	if err := validateRTSPURL(c.URL); err != nil {
		return invalid(f+".url", "%v", err)
	}
	if strings.ContainsAny(c.Username, ":@/\x00\r\n") || len(c.Username) > 128 {
		return invalid(f+".username", "must be at most 128 characters without : @ / or line breaks")
	}
	if strings.ContainsAny(c.Password.Reveal(), "\x00\r\n") || len(c.Password) > 128 {
		return invalid(f+".password", "must be at most 128 characters without line breaks")
	}
	if c.Password != "" && c.Username == "" {
		return invalid(f+".username", "a password needs a user name")
	}
	switch c.Transport {
	case TransportTCP, TransportUDP, TransportMulticast:
	default:
		return invalid(f+".transport", "must be tcp, udp or multicast, not %q", printable(string(c.Transport)))
	}
	if err := validateMaxAge(c.MaxAge); err != nil {
		return invalid(f+".max_age", "%v", err)
	}
	return nil
}

func validateRTSPURL(raw string) error {
	if len(raw) > 1024 {
		return errors.New("longer than 1024 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", strings.TrimPrefix(err.Error(), "parse "))
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("must start with rtsp:// or rtsps://")
	}
	if u.User != nil {
		return errors.New("must not hold credentials: set the user name and password instead")
	}
	if u.Hostname() == "" {
		return errors.New("has no host")
	}
	if p := u.Port(); p != "" {
		if err := validatePort(p); err != nil {
			return err
		}
	}
	return nil
}

func validatePort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1-65535", printable(p))
	}
	return nil
}

func validateMaxAge(d time.Duration) error {
	if d != 0 && (d < time.Minute || d > 10*365*24*time.Hour) {
		return fmt.Errorf("%v is not 0 (keep until space is needed) or between 1m and 10 years", d)
	}
	return nil
}

func validateStorage(s Storage) error {
	if s.DataDir != "" && (!path.IsAbs(s.DataDir) || path.Clean(s.DataDir) != s.DataDir) {
		return invalid("storage.data_dir", "must be a clean absolute path")
	}
	if s.IndexPath != "" && (!path.IsAbs(s.IndexPath) || path.Clean(s.IndexPath) != s.IndexPath) {
		return invalid("storage.index_path", "must be a clean absolute path")
	}
	if s.CommitInterval != 0 && (s.CommitInterval < 10*time.Millisecond || s.CommitInterval > 10*time.Second) {
		return invalid("storage.commit_interval", "%v is not 0 (default) or between 10ms and 10s", s.CommitInterval)
	}
	if err := validateMaxAge(s.DefaultMaxAge); err != nil {
		return invalid("storage.default_max_age", "%v", err)
	}
	return nil
}

// ValidateNetwork checks a network configuration on its own.
func ValidateNetwork(n Network) error {
	if n.Hostname != "" && !hostLabelRE.MatchString(n.Hostname) {
		return invalid("network.hostname", "must be a host name label (a-z, 0-9, -; at most 63)")
	}
	if len(n.Interfaces) > maxInterfaces {
		return invalid("network.interfaces", "more than %d interfaces", maxInterfaces)
	}
	names := map[string]Interface{}
	vlans := map[string]bool{}
	for _, in := range n.Interfaces {
		if !ifaceNameRE.MatchString(in.Name) {
			return invalid("network.interfaces["+printable(in.Name)+"].name", "must be 1-15 characters of a-z, 0-9, . _ and -")
		}
		if _, dup := names[in.Name]; dup {
			return invalid("network.interfaces["+in.Name+"]", "duplicate interface name")
		}
		names[in.Name] = in
		if err := validateInterface(in); err != nil {
			return err
		}
	}
	var gw4, gw6 string
	for _, in := range n.Interfaces {
		if in.Gateway4 != "" {
			if gw4 != "" {
				return invalid("network.interfaces["+in.Name+"].gateway4", "only one interface may have an IPv4 default gateway (%s has one)", gw4)
			}
			gw4 = in.Name
		}
		if in.Gateway6 != "" {
			if gw6 != "" {
				return invalid("network.interfaces["+in.Name+"].gateway6", "only one interface may have an IPv6 default gateway (%s has one)", gw6)
			}
			gw6 = in.Name
		}
	}
	for _, in := range n.Interfaces {
		if in.VLAN == 0 {
			continue
		}
		f := "network.interfaces[" + in.Name + "]"
		p, ok := names[in.Parent]
		if !ok {
			return invalid(f+".parent", "no interface %q", printable(in.Parent))
		}
		if p.VLAN != 0 {
			return invalid(f+".parent", "%q is itself a VLAN", in.Parent)
		}
		key := in.Parent + "." + strconv.Itoa(in.VLAN)
		if vlans[key] {
			return invalid(f+".vlan", "VLAN %d is already on %s", in.VLAN, in.Parent)
		}
		vlans[key] = true
	}
	if len(n.DNS) > maxListItems {
		return invalid("network.dns", "more than %d servers", maxListItems)
	}
	for i, d := range n.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return invalid(fmt.Sprintf("network.dns[%d]", i), "%q is not an IP address", printable(d))
		}
	}
	return nil
}

func validateInterface(in Interface) error {
	f := "network.interfaces[" + in.Name + "]"
	if in.VLAN != 0 || in.Parent != "" {
		if in.VLAN < 1 || in.VLAN > 4094 {
			return invalid(f+".vlan", "must be 1-4094 on a VLAN interface")
		}
		if in.Parent == "" {
			return invalid(f+".parent", "a VLAN interface needs its parent link")
		}
	}
	if in.MTU != 0 && (in.MTU < 576 || in.MTU > 9216) {
		return invalid(f+".mtu", "%d is not 0 (default) or 576-9216", in.MTU)
	}
	if len(in.Addresses) > maxListItems {
		return invalid(f+".addresses", "more than %d addresses", maxListItems)
	}
	var prefixes []netip.Prefix
	for _, a := range in.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return invalid(f+".addresses", "%q is not an address in CIDR form (192.0.2.10/24, 2001:db8::10/64)", printable(a))
		}
		if p.Addr().Is4In6() || p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() {
			return invalid(f+".addresses", "%s cannot be an interface address", a)
		}
		if p.Addr().Is4() && in.DHCP4 {
			return invalid(f+".addresses", "static IPv4 %s conflicts with DHCP", a)
		}
		for _, q := range prefixes {
			if q.Addr() == p.Addr() {
				return invalid(f+".addresses", "%s is listed twice", p.Addr())
			}
		}
		prefixes = append(prefixes, p)
	}
	if in.DHCP4 && in.Gateway4 != "" {
		return invalid(f+".gateway4", "a static gateway conflicts with DHCP")
	}
	for _, g := range []struct {
		field, addr string
		v4          bool
	}{{"gateway4", in.Gateway4, true}, {"gateway6", in.Gateway6, false}} {
		if g.addr == "" {
			continue
		}
		a, err := netip.ParseAddr(g.addr)
		if err != nil || a.Is4() != g.v4 || a.Is4In6() {
			fam := "IPv6"
			if g.v4 {
				fam = "IPv4"
			}
			return invalid(f+"."+g.field, "%q is not an %s address", printable(g.addr), fam)
		}
		if g.v4 || !a.IsLinkLocalUnicast() {
			if !inAnyPrefix(a, prefixes) {
				return invalid(f+"."+g.field, "%s is outside the interface's static prefixes", a)
			}
		}
	}
	return nil
}

func inAnyPrefix(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

func validateTime(t Time) error {
	if len(t.NTPServers) > maxListItems {
		return invalid("time.ntp_servers", "more than %d servers", maxListItems)
	}
	for i, s := range t.NTPServers {
		if _, err := netip.ParseAddr(s); err != nil && (len(s) > 253 || !hostNameRE.MatchString(s)) {
			return invalid(fmt.Sprintf("time.ntp_servers[%d]", i), "%q is not a host name or IP address", printable(s))
		}
	}
	if t.Timezone != "" && t.Timezone != "UTC" {
		if !zoneRE.MatchString(t.Timezone) {
			return invalid("time.timezone", "%q is not an IANA zone name such as Europe/Paris", printable(t.Timezone))
		}
		if _, err := time.LoadLocation(t.Timezone); err != nil {
			return invalid("time.timezone", "unknown zone %q", t.Timezone)
		}
	}
	return nil
}

func validateUsers(us []User) error {
	if len(us) > maxUsers {
		return invalid("users", "more than %d users", maxUsers)
	}
	seen := map[string]bool{}
	admins := 0
	for _, u := range us {
		f := "users[" + printable(u.Name) + "]"
		if !userNameRE.MatchString(u.Name) {
			return invalid(f+".name", "must be 1-32 characters of a-z, 0-9, - and _, not starting with a digit or -")
		}
		if seen[u.Name] {
			return invalid(f, "duplicate user name")
		}
		seen[u.Name] = true
		if roleRank(u.Role) == 0 {
			return invalid(f+".role", "must be admin, operator or viewer")
		}
		if u.Role == RoleAdmin {
			admins++
		}
		if _, err := parsePHC(u.PasswordHash); err != nil {
			return invalid(f+".password_hash", "%v", err)
		}
	}
	if len(us) > 0 && admins == 0 {
		return invalid("users", "at least one admin must remain")
	}
	return nil
}

func validateTokens(ts []Token) error {
	if len(ts) > maxTokens {
		return invalid("tokens", "more than %d tokens", maxTokens)
	}
	seen := map[string]bool{}
	for _, t := range ts {
		f := "tokens[" + printable(t.Name) + "]"
		if !userNameRE.MatchString(t.Name) {
			return invalid(f+".name", "must be 1-32 characters of a-z, 0-9, - and _, not starting with a digit or -")
		}
		if seen[t.Name] {
			return invalid(f, "duplicate token name")
		}
		seen[t.Name] = true
		if roleRank(t.Role) == 0 {
			return invalid(f+".role", "must be admin, operator or viewer")
		}
		if len(t.Hash) != 64 || strings.Trim(t.Hash, "0123456789abcdef") != "" {
			return invalid(f+".hash", "must be a lowercase hex SHA-256")
		}
	}
	return nil
}

// ValidateCluster checks the cluster settings on their own.
func ValidateCluster(c Cluster) error {
	if c.NodeID != "" && !userNameRE.MatchString(c.NodeID) {
		return invalid("cluster.node_id", "%q: must be 1-32 characters of a-z, 0-9, - and _, not starting with a digit or -", printable(c.NodeID))
	}
	if err := validateMembers(c); err != nil {
		return err
	}
	if err := validateHeartbeats(c.Heartbeats); err != nil {
		return err
	}
	if c.VIP != "" {
		a, err := netip.ParseAddr(c.VIP)
		if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Is4In6() {
			return invalid("cluster.vip", "%q is not a unicast IPv4 or IPv6 address", printable(c.VIP))
		}
		if c.VIPInterface == "" {
			return invalid("cluster.vip_interface", "a VIP needs the LAN interface it is answered on")
		}
	}
	if c.VIPInterface != "" {
		if !ifaceNameRE.MatchString(c.VIPInterface) {
			return invalid("cluster.vip_interface", "%q: must be 1-15 characters of a-z, 0-9, ., _ and -", printable(c.VIPInterface))
		}
		if c.VIP == "" {
			return invalid("cluster.vip_interface", "set only together with a VIP")
		}
	}
	if c.MirrorBind != "" {
		if err := validateBind(c.MirrorBind); err != nil {
			return invalid("cluster.mirror_bind", "%v", err)
		}
	}
	if !c.Enabled {
		return nil
	}
	switch {
	case c.NodeID == "":
		return invalid("cluster.node_id", "an enabled cluster needs this node's ID")
	case len(c.Members) == 0:
		return invalid("cluster.members", "an enabled cluster needs the three members")
	case len(c.Heartbeats) == 0:
		return invalid("cluster.heartbeats", "an enabled cluster needs at least one heartbeat path")
	}
	return nil
}

func validateMembers(c Cluster) error {
	if len(c.Members) == 0 {
		return nil
	}
	if len(c.Members) != 3 {
		return invalid("cluster.members", "want exactly three members (two data nodes and a witness), got %d", len(c.Members))
	}
	seen := map[string]bool{}
	witnesses := 0
	for i, m := range c.Members {
		f := fmt.Sprintf("cluster.members[%d]", i)
		if !userNameRE.MatchString(m.ID) {
			return invalid(f+".id", "%q: must be 1-32 characters of a-z, 0-9, - and _, not starting with a digit or -", printable(m.ID))
		}
		if seen[m.ID] {
			return invalid(f+".id", "duplicate member ID %q", m.ID)
		}
		seen[m.ID] = true
		if err := validateHostPort(m.Addr); err != nil {
			return invalid(f+".addr", "%v", err)
		}
		if m.Witness {
			witnesses++
		}
	}
	if witnesses != 1 {
		return invalid("cluster.members", "want exactly one witness, got %d", witnesses)
	}
	if c.NodeID != "" {
		me, ok := c.Member(c.NodeID)
		switch {
		case !ok:
			return invalid("cluster.node_id", "%q is not one of the members", c.NodeID)
		case me.Witness:
			return invalid("cluster.node_id", "%q is the witness; this node must be a data node", c.NodeID)
		}
	}
	return nil
}

func validateHeartbeats(hs []HeartbeatPath) error {
	if len(hs) > maxHeartbeats {
		return invalid("cluster.heartbeats", "more than %d heartbeat paths", maxHeartbeats)
	}
	seen := map[string]bool{}
	for i, h := range hs {
		f := fmt.Sprintf("cluster.heartbeats[%d]", i)
		if !ifaceNameRE.MatchString(h.Name) {
			return invalid(f+".name", "%q: must be 1-15 characters of a-z, 0-9, ., _ and -", printable(h.Name))
		}
		if seen[h.Name] {
			return invalid(f+".name", "duplicate heartbeat path %q", h.Name)
		}
		seen[h.Name] = true
		for _, e := range []struct{ field, v string }{{"local", h.Local}, {"peer", h.Peer}} {
			ap, err := netip.ParseAddrPort(e.v)
			if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
				return invalid(f+"."+e.field, "%q is not a unicast ip:port", printable(e.v))
			}
		}
		if h.Local == h.Peer {
			return invalid(f, "local and peer are the same address %s", h.Local)
		}
	}
	return nil
}

// validateBind checks a listen address: "ip:port" or ":port".
func validateBind(hp string) error {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not ip:port or :port", printable(hp))
	}
	if h != "" {
		if _, err := netip.ParseAddr(h); err != nil {
			return fmt.Errorf("%q is not an IP address", printable(h))
		}
	}
	return validatePort(p)
}

func validateHostPort(hp string) error {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not host:port", printable(hp))
	}
	if _, err := netip.ParseAddr(h); err != nil && (len(h) > 253 || !hostNameRE.MatchString(h)) {
		return fmt.Errorf("%q is not a host name or IP address", printable(h))
	}
	return validatePort(p)
}

// printable makes outside text safe to put in an error line: control
// characters and invalid UTF-8 are escaped, and it is cut at 64 bytes.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// ValidateUserName checks a user or token name on its own.
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return invalid("users["+printable(name)+"].name", "must be 1-32 characters of a-z, 0-9, - and _, not starting with a digit or -")
	}
	return nil
}
