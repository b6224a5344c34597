package config

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Effect says when a committed change takes effect.
type Effect string

// Effects of a change.
const (
	// Live changes are applied by the running system as soon as it is
	// notified (see Store.Subscribe).
	Live Effect = "live"
	// Restart changes are stored now and take effect at the next start of
	// nvrd.
	Restart Effect = "restart"
)

// ErrNotFound is returned when a mutation names a camera, user or token that
// does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a mutation adds a name that is already taken.
var ErrExists = errors.New("already exists")

// Mutation is one typed change to the configuration. Store.Apply runs it in
// one transaction together with its audit entry: all of it or none. The
// mutations are the exported structs of this package (AddCamera, SetNetwork,
// ...); the set is closed.
type Mutation interface {
	// Describe is the change in words for the audit log, secrets masked.
	Describe() string
	// kind is the audit kind, e.g. "camera.add".
	kind() string
	// apply changes s in place (s is a private copy) and says when it takes
	// effect. The store validates s afterwards.
	apply(env *applyEnv, s *Site) (Effect, error)
}

// applyEnv is what a mutation may use besides the site.
type applyEnv struct {
	now    time.Time
	rand   io.Reader
	argon  Argon2Params
	secret string // a value shown once (token, generated password)
}

func describeCamera(c Camera) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s url %s transport %s", c.Name, printable(c.URL), c.Transport)
	if c.Username != "" {
		fmt.Fprintf(&b, " user %s", printable(c.Username))
	}
	if c.Password != "" {
		b.WriteString(" password " + masked)
	}
	fmt.Fprintf(&b, " max-age %v enabled %v", c.MaxAge, c.Enabled)
	return b.String()
}

// AddCamera adds a new camera. An empty Transport means TransportTCP.
type AddCamera struct{ Camera Camera }

// Describe implements Mutation.
func (m AddCamera) Describe() string { return "add camera " + describeCamera(m.normal()) }
func (m AddCamera) kind() string     { return "camera.add" }
func (m AddCamera) normal() Camera {
	c := m.Camera
	if c.Transport == "" {
		c.Transport = TransportTCP
	}
	return c
}
func (m AddCamera) apply(_ *applyEnv, s *Site) (Effect, error) {
	if _, ok := s.Camera(m.Camera.Name); ok {
		return "", fmt.Errorf("camera %q: %w", m.Camera.Name, ErrExists)
	}
	s.Cameras = append(s.Cameras, m.normal())
	return Live, nil
}

// UpdateCamera replaces an existing camera's settings (matched by name).
// An empty Transport means TransportTCP.
type UpdateCamera struct{ Camera Camera }

// Describe implements Mutation.
func (m UpdateCamera) Describe() string {
	return "edit camera " + describeCamera(AddCamera(m).normal())
}
func (m UpdateCamera) kind() string { return "camera.edit" }
func (m UpdateCamera) apply(_ *applyEnv, s *Site) (Effect, error) {
	for i := range s.Cameras {
		if s.Cameras[i].Name == m.Camera.Name {
			s.Cameras[i] = AddCamera(m).normal()
			return Live, nil
		}
	}
	return "", fmt.Errorf("camera %q: %w", printable(m.Camera.Name), ErrNotFound)
}

// RemoveCamera removes a camera; its footage stays until evicted.
type RemoveCamera struct{ Name string }

// Describe implements Mutation.
func (m RemoveCamera) Describe() string { return "remove camera " + printable(m.Name) }
func (m RemoveCamera) kind() string     { return "camera.remove" }
func (m RemoveCamera) apply(_ *applyEnv, s *Site) (Effect, error) {
	n := len(s.Cameras)
	s.Cameras = slices.DeleteFunc(s.Cameras, func(c Camera) bool { return c.Name == m.Name })
	if len(s.Cameras) == n {
		return "", fmt.Errorf("camera %q: %w", printable(m.Name), ErrNotFound)
	}
	return Live, nil
}

// SetRetention sets one camera's MaxAge, or Storage.DefaultMaxAge when
// Camera is empty.
type SetRetention struct {
	Camera string
	MaxAge time.Duration
}

// Describe implements Mutation.
func (m SetRetention) Describe() string {
	if m.Camera == "" {
		return fmt.Sprintf("set default retention %v", m.MaxAge)
	}
	return fmt.Sprintf("set retention of camera %s %v", printable(m.Camera), m.MaxAge)
}
func (m SetRetention) kind() string { return "retention.set" }
func (m SetRetention) apply(_ *applyEnv, s *Site) (Effect, error) {
	if m.Camera == "" {
		s.Storage.DefaultMaxAge = m.MaxAge
		return Live, nil
	}
	for i := range s.Cameras {
		if s.Cameras[i].Name == m.Camera {
			s.Cameras[i].MaxAge = m.MaxAge
			return Live, nil
		}
	}
	return "", fmt.Errorf("camera %q: %w", printable(m.Camera), ErrNotFound)
}

// SetStorage replaces the storage settings. It needs a restart unless only
// DefaultMaxAge changed.
type SetStorage struct{ Storage Storage }

// Describe implements Mutation.
func (m SetStorage) Describe() string {
	st := m.Storage
	return fmt.Sprintf("set storage data-dir %s index %s commit-interval %v default-max-age %v",
		printable(st.DataDir), printable(st.IndexPath), st.CommitInterval, st.DefaultMaxAge)
}
func (m SetStorage) kind() string { return "storage.set" }
func (m SetStorage) apply(_ *applyEnv, s *Site) (Effect, error) {
	old := s.Storage
	s.Storage = m.Storage
	old.DefaultMaxAge = m.Storage.DefaultMaxAge
	if old == m.Storage {
		return Live, nil
	}
	return Restart, nil
}

// SetNetwork replaces the network settings.
type SetNetwork struct{ Network Network }

// Describe implements Mutation.
func (m SetNetwork) Describe() string {
	n := m.Network
	var b strings.Builder
	fmt.Fprintf(&b, "set network hostname %q dns %v", printable(n.Hostname), n.DNS)
	for _, in := range n.Interfaces {
		fmt.Fprintf(&b, "; %s", describeInterface(in))
	}
	return b.String()
}

func describeInterface(in Interface) string {
	var b strings.Builder
	b.WriteString(printable(in.Name))
	if in.VLAN != 0 {
		fmt.Fprintf(&b, " vlan %d on %s", in.VLAN, printable(in.Parent))
	}
	if in.DHCP4 {
		b.WriteString(" dhcp4")
	}
	if in.SLAAC6 {
		b.WriteString(" slaac6")
	}
	for _, a := range in.Addresses {
		b.WriteString(" " + printable(a))
	}
	if in.Gateway4 != "" {
		b.WriteString(" gw4 " + printable(in.Gateway4))
	}
	if in.Gateway6 != "" {
		b.WriteString(" gw6 " + printable(in.Gateway6))
	}
	if in.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", in.MTU)
	}
	return b.String()
}

func (m SetNetwork) kind() string { return "network.set" }
func (m SetNetwork) apply(_ *applyEnv, s *Site) (Effect, error) {
	s.Network = m.Network
	return Live, nil
}

// SetTime replaces the NTP servers and time zone.
type SetTime struct{ Time Time }

// Describe implements Mutation.
func (m SetTime) Describe() string {
	return fmt.Sprintf("set time ntp %v timezone %q", m.Time.NTPServers, printable(m.Time.Timezone))
}
func (m SetTime) kind() string { return "time.set" }
func (m SetTime) apply(_ *applyEnv, s *Site) (Effect, error) {
	s.Time = m.Time
	return Live, nil
}

// SetCluster replaces the cluster settings; needs a restart.
type SetCluster struct{ Cluster Cluster }

// Describe implements Mutation.
func (m SetCluster) Describe() string {
	c := m.Cluster
	var b strings.Builder
	fmt.Fprintf(&b, "set cluster enabled %v node %q members", c.Enabled, printable(c.NodeID))
	for _, mb := range c.Members {
		fmt.Fprintf(&b, " %s=%s", printable(mb.ID), printable(mb.Addr))
		if mb.Witness {
			b.WriteString("/witness")
		}
	}
	b.WriteString(" heartbeats")
	for _, h := range c.Heartbeats {
		fmt.Fprintf(&b, " %s=%s/%s", printable(h.Name), printable(h.Local), printable(h.Peer))
	}
	fmt.Fprintf(&b, " vip %q iface %q mirror-bind %q", printable(c.VIP), printable(c.VIPInterface), printable(c.MirrorBind))
	return b.String()
}
func (m SetCluster) kind() string { return "cluster.set" }
func (m SetCluster) apply(_ *applyEnv, s *Site) (Effect, error) {
	s.Cluster = m.Cluster
	return Restart, nil
}

// AddUser adds a user with a password (checked by CheckPassword, stored as
// an argon2id hash).
type AddUser struct {
	Name               string
	Role               Role
	Password           string
	MustChangePassword bool
}

// Describe implements Mutation.
func (m AddUser) Describe() string {
	return fmt.Sprintf("add user %s role %s password %s", printable(m.Name), printable(string(m.Role)), masked)
}
func (m AddUser) kind() string { return "user.add" }
func (m AddUser) apply(env *applyEnv, s *Site) (Effect, error) {
	if _, ok := s.User(m.Name); ok {
		return "", fmt.Errorf("user %q: %w", m.Name, ErrExists)
	}
	if err := CheckPassword(m.Password); err != nil {
		return "", err
	}
	h, err := HashPassword(m.Password, env.argon, env.rand)
	if err != nil {
		return "", err
	}
	s.Users = append(s.Users, User{Name: m.Name, Role: m.Role, PasswordHash: h, MustChangePassword: m.MustChangePassword, Created: env.now})
	return Live, nil
}

// RemoveUser removes a user; the last admin cannot be removed.
type RemoveUser struct{ Name string }

// Describe implements Mutation.
func (m RemoveUser) Describe() string { return "remove user " + printable(m.Name) }
func (m RemoveUser) kind() string     { return "user.remove" }
func (m RemoveUser) apply(_ *applyEnv, s *Site) (Effect, error) {
	n := len(s.Users)
	s.Users = slices.DeleteFunc(s.Users, func(u User) bool { return u.Name == m.Name })
	if len(s.Users) == n {
		return "", fmt.Errorf("user %q: %w", printable(m.Name), ErrNotFound)
	}
	if !slices.ContainsFunc(s.Users, func(u User) bool { return u.Role == RoleAdmin }) {
		return "", invalid("users", "cannot remove %s: at least one admin must remain", m.Name)
	}
	return Live, nil
}

// SetPassword changes a user's password and clears MustChangePassword.
type SetPassword struct {
	Name     string
	Password string
}

// Describe implements Mutation.
func (m SetPassword) Describe() string { return "change password of user " + printable(m.Name) }
func (m SetPassword) kind() string     { return "user.passwd" }
func (m SetPassword) apply(env *applyEnv, s *Site) (Effect, error) {
	for i := range s.Users {
		if s.Users[i].Name != m.Name {
			continue
		}
		if err := CheckPassword(m.Password); err != nil {
			return "", err
		}
		h, err := HashPassword(m.Password, env.argon, env.rand)
		if err != nil {
			return "", err
		}
		s.Users[i].PasswordHash = h
		s.Users[i].MustChangePassword = false
		return Live, nil
	}
	return "", fmt.Errorf("user %q: %w", printable(m.Name), ErrNotFound)
}

// CreateToken creates an API token; Apply's Change.Secret holds the token,
// shown once and never stored.
type CreateToken struct {
	Name string
	Role Role
}

// Describe implements Mutation.
func (m CreateToken) Describe() string {
	return fmt.Sprintf("create token %s role %s", printable(m.Name), printable(string(m.Role)))
}
func (m CreateToken) kind() string { return "token.create" }
func (m CreateToken) apply(env *applyEnv, s *Site) (Effect, error) {
	for _, t := range s.Tokens {
		if t.Name == m.Name {
			return "", fmt.Errorf("token %q: %w", m.Name, ErrExists)
		}
	}
	tok, hash, err := newToken(env.rand)
	if err != nil {
		return "", err
	}
	env.secret = tok
	s.Tokens = append(s.Tokens, Token{Name: m.Name, Role: m.Role, Hash: hash, Created: env.now})
	return Live, nil
}

// RevokeToken deletes an API token.
type RevokeToken struct{ Name string }

// Describe implements Mutation.
func (m RevokeToken) Describe() string { return "revoke token " + printable(m.Name) }
func (m RevokeToken) kind() string     { return "token.revoke" }
func (m RevokeToken) apply(_ *applyEnv, s *Site) (Effect, error) {
	n := len(s.Tokens)
	s.Tokens = slices.DeleteFunc(s.Tokens, func(t Token) bool { return t.Name == m.Name })
	if len(s.Tokens) == n {
		return "", fmt.Errorf("token %q: %w", printable(m.Name), ErrNotFound)
	}
	return Live, nil
}

// ReplaceSite replaces the whole configuration (what Import applies); needs
// a restart.
type ReplaceSite struct {
	Site Site
	// Source says where the site came from, for the audit log.
	Source string
}

// Describe implements Mutation.
func (m ReplaceSite) Describe() string {
	return fmt.Sprintf("replace whole configuration from %s: %d cameras, %d users, %d tokens",
		printable(m.Source), len(m.Site.Cameras), len(m.Site.Users), len(m.Site.Tokens))
}
func (m ReplaceSite) kind() string { return "site.import" }
func (m ReplaceSite) apply(_ *applyEnv, s *Site) (Effect, error) {
	*s = m.Site.clone()
	return Restart, nil
}

// bootstrapAdmin creates the first-run "admin" with a random password when
// no user exists.
type bootstrapAdmin struct{}

// FirstAdmin is the name of the user created at first run.
const FirstAdmin = "admin"

func (bootstrapAdmin) Describe() string {
	return "first run: create user " + FirstAdmin + " with a random password " + masked
}
func (bootstrapAdmin) kind() string { return "user.bootstrap" }
func (bootstrapAdmin) apply(env *applyEnv, s *Site) (Effect, error) {
	if len(s.Users) > 0 {
		return "", fmt.Errorf("user %q: %w", FirstAdmin, ErrExists)
	}
	b := make([]byte, 12)
	if _, err := io.ReadFull(env.rand, b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789" // no look-alikes on a serial terminal
	pw := make([]byte, len(b))
	for i, c := range b {
		pw[i] = alphabet[int(c)%len(alphabet)]
	}
	m := AddUser{Name: FirstAdmin, Role: RoleAdmin, Password: string(pw), MustChangePassword: true}
	if _, err := m.apply(env, s); err != nil {
		return "", err
	}
	env.secret = string(pw)
	return Live, nil
}
