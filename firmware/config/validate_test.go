package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateCamera(t *testing.T) {
	ok := Camera{Name: "cam_1-a", URL: "rtsp://cam.local:8554/live", Transport: TransportUDP}
	tests := []struct {
		name  string
		edit  func(*Camera)
		field string // "" = valid
	}{
		{"valid", func(*Camera) {}, ""},
		{"rtsps", func(c *Camera) { c.URL = "rtsps://[2001:db8::1]/s" }, ""},
		{"max age", func(c *Camera) { c.MaxAge = time.Hour }, ""},
		{"upper case name", func(c *Camera) { c.Name = "Lobby" }, ".name"},
		{"empty name", func(c *Camera) { c.Name = "" }, ".name"},
		{"space in name", func(c *Camera) { c.Name = "a b" }, ".name"},
		{"long name", func(c *Camera) { c.Name = strings.Repeat("a", 33) }, ".name"},
		{"http", func(c *Camera) { c.URL = "http://cam/" }, ".url"},
		{"no host", func(c *Camera) { c.URL = "rtsp:///x" }, ".url"},
		{"port zero", func(c *Camera) { c.URL = "rtsp://cam:0/x" }, ".url"},
		{"port too big", func(c *Camera) { c.URL = "rtsp://cam:70000/x" }, ".url"},
		{"credentials in url", func(c *Camera) { c.URL = "rtsp://u:p@cam/x" }, ".url"},
		{"garbage url", func(c *Camera) { c.URL = "rtsp://cam\x00/" }, ".url"},
		{"password without user", func(c *Camera) { c.Password = "x" }, ".username"},
		{"newline in password", func(c *Camera) { c.Username = "u"; c.Password = "a\nb" }, ".password"},
		{"transport", func(c *Camera) { c.Transport = "sctp" }, ".transport"},
		{"empty transport", func(c *Camera) { c.Transport = "" }, ".transport"},
		{"max age too short", func(c *Camera) { c.MaxAge = time.Second }, ".max_age"},
		{"negative max age", func(c *Camera) { c.MaxAge = -time.Hour }, ".max_age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			checkField(t, ValidateCamera(c), tt.field)
		})
	}
}

func checkField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a ValidationError on %s", err, field)
	}
	if !strings.HasSuffix(ve.Field, field) && !strings.Contains(ve.Field, field) {
		t.Errorf("field = %s, want ...%s (%v)", ve.Field, field, err)
	}
}

func TestValidateNetwork(t *testing.T) {
	eth0 := Interface{Name: "eth0", Addresses: []string{"192.0.2.10/24", "2001:db8::10/64"}, Gateway4: "192.0.2.1", Gateway6: "fe80::1"}
	tests := []struct {
		name  string
		n     Network
		field string
	}{
		{"static", Network{Hostname: "nvr-1", Interfaces: []Interface{eth0}, DNS: []string{"192.0.2.53", "2001:db8::53"}}, ""},
		{"dhcp", Network{Interfaces: []Interface{{Name: "eth0", DHCP4: true, SLAAC6: true}}}, ""},
		{"vlan", Network{Interfaces: []Interface{eth0, {Name: "eth0.20", VLAN: 20, Parent: "eth0", DHCP4: true}}}, ""},
		{"empty", Network{}, ""},
		{"bad hostname", Network{Hostname: "nvr_1"}, "hostname"},
		{"not cidr", Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.0.2.10"}}}}, "addresses"},
		{"bad cidr", Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.0.2.10/33"}}}}, "addresses"},
		{"multicast addr", Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"224.0.0.1/24"}}}}, "addresses"},
		{"dhcp and static v4", Network{Interfaces: []Interface{{Name: "eth0", DHCP4: true, Addresses: []string{"192.0.2.10/24"}}}}, "addresses"},
		{"gateway off subnet", Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.0.2.10/24"}, Gateway4: "198.51.100.1"}}}, "gateway4"},
		{"v6 gateway in gateway4", Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.0.2.10/24"}, Gateway4: "2001:db8::1"}}}, "gateway4"},
		{"dup iface", Network{Interfaces: []Interface{{Name: "eth0", DHCP4: true}, {Name: "eth0", DHCP4: true}}}, "interfaces[eth0]"},
		{"bad iface name", Network{Interfaces: []Interface{{Name: "a-very-long-interface"}}}, ".name"},
		{"vlan id", Network{Interfaces: []Interface{eth0, {Name: "v", VLAN: 4095, Parent: "eth0"}}}, ".vlan"},
		{"vlan no parent", Network{Interfaces: []Interface{{Name: "v", VLAN: 5, Parent: "eth9"}}}, ".parent"},
		{"vlan twice", Network{Interfaces: []Interface{eth0, {Name: "a", VLAN: 5, Parent: "eth0"}, {Name: "b", VLAN: 5, Parent: "eth0"}}}, ".vlan"},
		{"mtu", Network{Interfaces: []Interface{{Name: "eth0", MTU: 100}}}, ".mtu"},
		{"two v4 gateways", Network{Interfaces: []Interface{eth0, {Name: "eth1", Addresses: []string{"198.51.100.2/24"}, Gateway4: "198.51.100.1"}}}, "eth1].gateway4"},
		{"bad dns", Network{DNS: []string{"dns.example"}}, "dns[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkField(t, ValidateNetwork(tt.n), tt.field) })
	}
}

func TestValidateSite(t *testing.T) {
	h, err := HashPassword("password1", fastArgon, strings.NewReader(strings.Repeat("x", 16)))
	if err != nil {
		t.Fatal(err)
	}
	admin := User{Name: "admin", Role: RoleAdmin, PasswordHash: h}
	tests := []struct {
		name  string
		s     Site
		field string
	}{
		{"empty", Site{}, ""},
		{"time", Site{Time: Time{NTPServers: []string{"pool.ntp.org", "192.0.2.1"}, Timezone: "America/New_York"}}, ""},
		{"bad zone", Site{Time: Time{Timezone: "Mars/Olympus"}}, "timezone"},
		{"zone injection", Site{Time: Time{Timezone: "../../etc/passwd"}}, "timezone"},
		{"bad ntp", Site{Time: Time{NTPServers: []string{"bad host"}}}, "ntp_servers[0]"},
		{"storage", Site{Storage: Storage{DataDir: "/perm/data", IndexPath: "/perm/index.db", CommitInterval: time.Second}}, ""},
		{"commit interval", Site{Storage: Storage{CommitInterval: time.Millisecond}}, "commit_interval"},
		{"unclean path", Site{Storage: Storage{DataDir: "/perm/../data"}}, "data_dir"},
		{"dup camera", Site{Cameras: []Camera{lobbyV(), lobbyV()}}, "cameras[lobby]"},
		{"users", Site{Users: []User{admin, {Name: "op", Role: RoleOperator, PasswordHash: h}}}, ""},
		{"no admin", Site{Users: []User{{Name: "op", Role: RoleOperator, PasswordHash: h}}}, "users"},
		{"bad hash", Site{Users: []User{{Name: "admin", Role: RoleAdmin, PasswordHash: "plain"}}}, "password_hash"},
		{"dup user", Site{Users: []User{admin, admin}}, "users[admin]"},
		{"bad token hash", Site{Tokens: []Token{{Name: "t", Role: RoleViewer, Hash: "XYZ"}}}, "hash"},
		{"token", Site{Tokens: []Token{{Name: "t", Role: RoleViewer, Hash: TokenHash("x")}}}, ""},
		{"cluster", Site{Cluster: pairCluster()}, ""},
		{"cluster enabled alone", Site{Cluster: Cluster{Enabled: true}}, "cluster.node_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkField(t, Validate(&tt.s), tt.field) })
	}
}

func lobbyV() Camera {
	c := lobby()
	c.Transport = TransportTCP
	return c
}

func TestCheckPassword(t *testing.T) {
	for pw, ok := range map[string]bool{
		"correct horse": true, "short": false, "with\ttab!": false, strings.Repeat("a", 257): false, "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8": false, "pässwörd": true,
	} {
		if err := CheckPassword(pw); (err == nil) != ok {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
}

func TestRoleAllows(t *testing.T) {
	for _, tt := range []struct {
		r, need Role
		want    bool
	}{{RoleAdmin, RoleViewer, true}, {RoleViewer, RoleOperator, false}, {RoleOperator, RoleOperator, true}, {"", RoleViewer, false}, {RoleAdmin, "", false}} {
		if got := tt.r.Allows(tt.need); got != tt.want {
			t.Errorf("%q.Allows(%q) = %v", tt.r, tt.need, got)
		}
	}
}
