package config

import (
	"encoding/json"
	"time"
)

// Secret is a credential kept in clear because the appliance must present it
// (a camera's RTSP password). It never prints back: String, GoString and
// MarshalJSON show a mask; Reveal returns the value for the code that uses it.
type Secret string

// masked is what a non-empty Secret prints as.
const masked = "********"

// String returns a mask (empty when the secret is empty).
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString masks the secret in %#v output.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalJSON writes the mask, never the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Reveal returns the secret's clear value.
func (s Secret) Reveal() string { return string(s) }

// Transport is how a camera's RTP packets travel.
type Transport string

// Transports a camera may use.
const (
	TransportTCP       Transport = "tcp"       // interleaved in the RTSP connection (default: works through NAT and firewalls)
	TransportUDP       Transport = "udp"       // unicast UDP
	TransportMulticast Transport = "multicast" // UDP multicast
)

// Role is a user's or token's permission level.
type Role string

// Roles, from most to least powerful.
const (
	RoleAdmin    Role = "admin"    // everything, including users, network, storage format, reboot
	RoleOperator Role = "operator" // cameras and retention, events; no users, network or power
	RoleViewer   Role = "viewer"   // read-only
)

// Allows reports whether r is at least as powerful as need.
func (r Role) Allows(need Role) bool { return roleRank(r) >= roleRank(need) && roleRank(need) > 0 }

func roleRank(r Role) int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Camera is one recorded IP camera. Changes apply live: adding or enabling a
// camera starts its session, editing restarts it, removing stops it (its
// footage stays until evicted).
type Camera struct {
	// Name identifies the camera: 1-32 characters of [a-z0-9-_]. It is the
	// stream name in the ring store and cannot be changed.
	Name string `json:"name"`
	// URL is the rtsp:// or rtsps:// address, with a host, without
	// credentials (they go in Username/Password).
	URL string `json:"url"`
	// Username and Password are the RTSP credentials (both empty: none).
	Username string `json:"username,omitempty"`
	Password Secret `json:"password,omitempty"`
	// Transport defaults to TransportTCP when empty.
	Transport Transport `json:"transport"`
	// MaxAge deletes footage older than this; 0 keeps it until the ring
	// needs the space. When set, at least one minute.
	MaxAge time.Duration `json:"max_age"`
	// Enabled cameras are recorded.
	Enabled bool `json:"enabled"`
}

// Storage says where recordings live. Changes need a restart of nvrd,
// except DefaultMaxAge which applies live.
type Storage struct {
	// DataDir is the recording volume's directory (absolute); empty means
	// nvrd's built-in default.
	DataDir string `json:"data_dir"`
	// IndexPath is the store's bbolt index (absolute); empty means
	// DataDir/index.db.
	IndexPath string `json:"index_path,omitempty"`
	// CommitInterval is the ring store's commit tick (10ms-10s); 0 means the
	// store's default.
	CommitInterval time.Duration `json:"commit_interval"`
	// DefaultMaxAge is the retention of cameras whose MaxAge is 0; 0 keeps
	// footage until the ring needs the space. Applies live.
	DefaultMaxAge time.Duration `json:"default_max_age"`
}

// Network is the appliance's IP configuration. It applies live through the
// system's network applier (the console calls it before committing).
type Network struct {
	// Hostname is the appliance's host name (RFC 1123 label); empty: "nvr".
	Hostname string `json:"hostname,omitempty"`
	// Interfaces are the configured links; unlisted links stay down.
	Interfaces []Interface `json:"interfaces"`
	// DNS lists resolver addresses (IPv4 or IPv6), used in order.
	DNS []string `json:"dns,omitempty"`
}

// DefaultGateways returns the IPv4 and IPv6 default routers ("" when none)
// and the interfaces they are on.
func (n Network) DefaultGateways() (gw4, dev4, gw6, dev6 string) {
	for _, in := range n.Interfaces {
		if in.Gateway4 != "" {
			gw4, dev4 = in.Gateway4, in.Name
		}
		if in.Gateway6 != "" {
			gw6, dev6 = in.Gateway6, in.Name
		}
	}
	return gw4, dev4, gw6, dev6
}

// Interface is one link's addressing: a physical port, or a VLAN on one
// when VLAN is set.
type Interface struct {
	// Name is the link name (1-15 characters of [a-z0-9._-]), unique. A VLAN
	// interface gets its own name, e.g. "eth0.20".
	Name string `json:"name"`
	// VLAN is the 802.1Q tag (1-4094) of a VLAN interface on Parent; 0 for a
	// physical link.
	VLAN int `json:"vlan,omitempty"`
	// Parent is the physical link a VLAN interface rides on.
	Parent string `json:"parent,omitempty"`
	// DHCP4 obtains the IPv4 address by DHCP; then Addresses holds no IPv4
	// prefix and Gateway4 is empty.
	DHCP4 bool `json:"dhcp4"`
	// SLAAC6 accepts IPv6 router advertisements (autoconfiguration).
	SLAAC6 bool `json:"slaac6"`
	// Addresses are static addresses in CIDR form ("192.0.2.10/24",
	// "2001:db8::10/64").
	Addresses []string `json:"addresses,omitempty"`
	// Gateway4 and Gateway6 are the default routers; each must lie in one of
	// the interface's static prefixes of its family (an IPv6 link-local
	// router is accepted), and at most one interface has each.
	Gateway4 string `json:"gateway4,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	// MTU is the link MTU (576-9216); 0 keeps the driver's default.
	MTU int `json:"mtu,omitempty"`
}

// Time is the clock configuration. Applies live.
type Time struct {
	// NTPServers are host names or addresses, used in order; empty: the
	// clock is set by hand (console "time set").
	NTPServers []string `json:"ntp_servers,omitempty"`
	// Timezone is an IANA zone name ("Europe/Paris"); empty means UTC.
	Timezone string `json:"timezone,omitempty"`
}

// User is a person who logs in on the console or the API. Changes apply live.
type User struct {
	// Name is 1-32 characters of [a-z0-9_-], starting with a letter or _.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// PasswordHash is the argon2id hash in PHC form (see HashPassword); it is
	// never shown (omitted from JSON), and kept by export/import.
	PasswordHash string `json:"-"`
	// MustChangePassword asks for a new password at the next login (set on
	// the first-run admin).
	MustChangePassword bool      `json:"must_change_password,omitempty"`
	Created            time.Time `json:"created"`
}

// Token is an API token. Only the SHA-256 of the token is stored; the token
// itself is shown once, when created. Changes apply live.
type Token struct {
	// Name identifies the token (same rules as a user name), unique.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Hash is the lowercase hex SHA-256 of the token; never shown.
	Hash    string    `json:"-"`
	Created time.Time `json:"created"`
}

// Cluster makes the appliance one data node of a pair (primary, standby and
// a witness). Every change needs a restart of nvrd. The pair's keys are not
// here: they live in the pairing bundle next to the configuration database
// (console "cluster pair" / "cluster import").
type Cluster struct {
	// Enabled joins the pair at start; it needs NodeID, the three Members
	// and at least one heartbeat path. Disabled: the appliance records alone.
	Enabled bool `json:"enabled"`
	// NodeID is this appliance's ID in the pair (user-name rules); it must
	// be one of the data (non-witness) Members and match the pairing
	// bundle's node.
	NodeID string `json:"node_id,omitempty"`
	// Members are the three voters, this node included: two data nodes and
	// exactly one witness, IDs unique. Empty, or exactly three.
	Members []ClusterMember `json:"members,omitempty"`
	// Heartbeats are the heartbeat paths to the other data node, the
	// dedicated link first (the mirror ships over the first one that is up).
	Heartbeats []HeartbeatPath `json:"heartbeats,omitempty"`
	// VIP is the pair's service address (IPv4 or IPv6) held by the primary;
	// empty: none.
	VIP string `json:"vip,omitempty"`
	// VIPInterface is the LAN interface the VIP is answered on; required
	// with VIP (and only with it).
	VIPInterface string `json:"vip_interface,omitempty"`
	// MirrorBind is the mirror receiver's listen address ("ip:port" or
	// ":port"); empty means ":7445".
	MirrorBind string `json:"mirror_bind,omitempty"`
}

// ClusterMember is one voter of the pair.
type ClusterMember struct {
	// ID names the member (user-name rules), as in its pairing bundle.
	ID string `json:"id"`
	// Addr is its raft/control address, "host:port".
	Addr string `json:"addr"`
	// Witness marks the tie-breaker (nvrd witness), which records nothing.
	Witness bool `json:"witness,omitempty"`
}

// HeartbeatPath is one heartbeat path between the two data nodes.
type HeartbeatPath struct {
	// Name labels the path in status ("dedicated", "lan"): 1-15 characters
	// of [a-z0-9._-], unique.
	Name string `json:"name"`
	// Local is this node's "ip:port" on the path.
	Local string `json:"local"`
	// Peer is the other data node's "ip:port" on the path.
	Peer string `json:"peer"`
}

// Member returns the member with the given ID and whether it exists.
func (c Cluster) Member(id string) (ClusterMember, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return ClusterMember{}, false
}

// Site is a whole appliance configuration: what Export writes and Import
// replaces.
type Site struct {
	Cameras []Camera `json:"cameras"`
	Storage Storage  `json:"storage"`
	Network Network  `json:"network"`
	Time    Time     `json:"time"`
	Users   []User   `json:"users"`
	Tokens  []Token  `json:"tokens"`
	Cluster Cluster  `json:"cluster"`
}

// Camera returns the named camera and whether it exists.
func (s *Site) Camera(name string) (Camera, bool) {
	for _, c := range s.Cameras {
		if c.Name == name {
			return c, true
		}
	}
	return Camera{}, false
}

// User returns the named user and whether it exists.
func (s *Site) User(name string) (User, bool) {
	for _, u := range s.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// clone deep-copies s so a mutation can change it freely.
func (s Site) clone() Site {
	c := s
	c.Cameras = append([]Camera(nil), s.Cameras...)
	c.Users = append([]User(nil), s.Users...)
	c.Tokens = append([]Token(nil), s.Tokens...)
	c.Network.DNS = append([]string(nil), s.Network.DNS...)
	c.Network.Interfaces = make([]Interface, len(s.Network.Interfaces))
	for i, in := range s.Network.Interfaces {
		in.Addresses = append([]string(nil), in.Addresses...)
		c.Network.Interfaces[i] = in
	}
	c.Time.NTPServers = append([]string(nil), s.Time.NTPServers...)
	c.Cluster.Members = append([]ClusterMember(nil), s.Cluster.Members...)
	c.Cluster.Heartbeats = append([]HeartbeatPath(nil), s.Cluster.Heartbeats...)
	return c
}
