package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fastArgon keeps tests quick; production uses the documented defaults.
var fastArgon = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	s, err := Open(Options{Path: path, Argon2: fastArgon, Now: clk.now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Check: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newTestStore(t *testing.T) (*Store, string) {
	path := filepath.Join(t.TempDir(), "config.db")
	return openTest(t, path), path
}

func lobby() Camera {
	return Camera{Name: "lobby", URL: "rtsp://192.0.2.5:554/stream1", Username: "viewer", Password: "s3cret-pw", Enabled: true}
}

func mustApply(t *testing.T, s *Store, m Mutation) Change {
	t.Helper()
	ch, err := s.Apply("test", m)
	if err != nil {
		t.Fatalf("Apply(%s): %v", m.Describe(), err)
	}
	return ch
}

func TestApplyPersistsAcrossReopen(t *testing.T) {
	s, path := newTestStore(t)
	ch := mustApply(t, s, AddCamera{Camera: lobby()})
	if ch.Effect != Live || ch.Kind != "camera.add" || ch.Seq != 1 {
		t.Errorf("change = %+v", ch)
	}
	if c, _ := ch.After.Camera("lobby"); c.Transport != TransportTCP {
		t.Errorf("default transport = %q, want tcp", c.Transport)
	}
	mustApply(t, s, SetRetention{Camera: "lobby", MaxAge: 48 * time.Hour})
	mustApply(t, s, SetTime{Time: Time{NTPServers: []string{"pool.ntp.org"}, Timezone: "Europe/Paris"}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Site(); !errors.Is(err, ErrClosed) {
		t.Errorf("Site after Close: %v, want ErrClosed", err)
	}
	s2 := openTest(t, path)
	site, err := s2.Site()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := site.Camera("lobby")
	if !ok || c.MaxAge != 48*time.Hour || c.Password.Reveal() != "s3cret-pw" || c.URL != lobby().URL {
		t.Errorf("camera after reopen = %+v", c)
	}
	if site.Time.Timezone != "Europe/Paris" {
		t.Errorf("timezone = %q", site.Time.Timezone)
	}
}

func TestFailingMutationChangesNothing(t *testing.T) {
	s, _ := newTestStore(t)
	mustApply(t, s, AddCamera{Camera: lobby()})
	if _, _, err := s.EnsureAdmin("test"); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Site()
	auditBefore, _ := s.Audit(0, 100)
	notified := 0
	defer s.Subscribe(func(Change) { notified++ })()
	bad := lobby()
	bad.Name = "door"
	bad.URL = "http://192.0.2.6/"
	tests := []struct {
		name string
		m    Mutation
		want error
	}{
		{"duplicate camera", AddCamera{Camera: lobby()}, ErrExists},
		{"bad url", AddCamera{Camera: bad}, ErrInvalid},
		{"edit missing", UpdateCamera{Camera: Camera{Name: "nope", URL: "rtsp://x"}}, ErrNotFound},
		{"remove missing", RemoveCamera{Name: "nope"}, ErrNotFound},
		{"retention too short", SetRetention{Camera: "lobby", MaxAge: time.Second}, ErrInvalid},
		{"last admin", RemoveUser{Name: FirstAdmin}, ErrInvalid},
		{"short password", AddUser{Name: "bob", Role: RoleViewer, Password: "short"}, ErrInvalid},
		{"bad role", AddUser{Name: "bob", Role: "root", Password: "long enough"}, ErrInvalid},
		{"bad network", SetNetwork{Network: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.1"}}}}}, ErrInvalid},
		{"bad storage", SetStorage{Storage: Storage{DataDir: "relative"}}, ErrInvalid},
		{"revoke missing", RevokeToken{Name: "x"}, ErrNotFound},
		{"replace with invalid site", ReplaceSite{Site: Site{Cameras: []Camera{bad}}}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Apply("test", tt.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %v, want %v", err, tt.want)
			}
			after, _ := s.Site()
			if fmt.Sprintf("%#v", after) != fmt.Sprintf("%#v", before) {
				t.Errorf("site changed:\n%#v\n%#v", before, after)
			}
			auditAfter, _ := s.Audit(0, 100)
			if len(auditAfter) != len(auditBefore) {
				t.Errorf("audit grew from %d to %d", len(auditBefore), len(auditAfter))
			}
		})
	}
	if notified != 0 {
		t.Errorf("%d notifications for refused changes", notified)
	}
}

func TestAuditNewestFirstAndMasked(t *testing.T) {
	s, _ := newTestStore(t)
	mustApply(t, s, AddCamera{Camera: lobby()})
	mustApply(t, s, AddUser{Name: "alice", Role: RoleAdmin, Password: "correct horse"})
	tok := mustApply(t, s, CreateToken{Name: "vms", Role: RoleViewer})
	mustApply(t, s, RemoveCamera{Name: "lobby"})
	entries, err := s.Audit(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{}
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
		for _, secret := range []string{"s3cret-pw", "correct horse", tok.Secret} {
			if strings.Contains(e.What, secret) {
				t.Errorf("audit entry %q shows a secret", e.What)
			}
		}
		if e.Actor != "test" || e.Time.IsZero() {
			t.Errorf("entry %+v lacks who/when", e)
		}
	}
	if got, want := strings.Join(kinds, ","), "camera.remove,token.create,user.add,camera.add"; got != want {
		t.Errorf("kinds = %s, want %s", got, want)
	}
	if past, _ := s.Audit(1000, 10); len(past) != 4 || past[0].Seq != 4 {
		t.Errorf("Audit(before=1000) = %+v, want all 4", past)
	}
	if none, _ := s.Audit(1, 10); len(none) != 0 {
		t.Errorf("Audit(before=1) = %+v, want none", none)
	}
	older, _ := s.Audit(entries[1].Seq, 10)
	if len(older) != 2 || older[0].Seq != entries[2].Seq {
		t.Errorf("Audit(before=%d) = %+v", entries[1].Seq, older)
	}
}

func TestAuditPruned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := Open(Options{Path: path, AuditMax: 3, Argon2: fastArgon})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		mustApply(t, s, SetRetention{MaxAge: time.Duration(i+1) * time.Hour})
	}
	e, _ := s.Audit(0, 100)
	if len(e) != 3 || e[0].Seq != 5 || e[2].Seq != 3 {
		t.Errorf("audit = %+v, want seqs 5..3", e)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	c := lobby()
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), mustJSON(t, c), AddCamera{c}.Describe()} {
		if strings.Contains(s, "s3cret-pw") {
			t.Errorf("password printed: %s", s)
		}
	}
	u := User{Name: "a", PasswordHash: "$argon2id$secret"}
	if strings.Contains(mustJSON(t, u), "argon2id") {
		t.Errorf("hash in user JSON")
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSubscribeInCommitOrder(t *testing.T) {
	s, _ := newTestStore(t)
	var got []string
	cancel := s.Subscribe(func(ch Change) {
		if ch.Secret != "" {
			t.Errorf("subscriber saw a secret")
		}
		got = append(got, ch.Kind)
	})
	mustApply(t, s, AddCamera{Camera: lobby()})
	mustApply(t, s, CreateToken{Name: "vms", Role: RoleViewer})
	ch := mustApply(t, s, SetStorage{Storage: Storage{DataDir: "/data"}})
	if ch.Effect != Restart {
		t.Errorf("storage path change effect = %s, want restart", ch.Effect)
	}
	ch = mustApply(t, s, SetStorage{Storage: Storage{DataDir: "/data", DefaultMaxAge: time.Hour}})
	if ch.Effect != Live {
		t.Errorf("default max age change effect = %s, want live", ch.Effect)
	}
	cancel()
	mustApply(t, s, RemoveCamera{Name: "lobby"})
	if strings.Join(got, ",") != "camera.add,token.create,storage.set,storage.set" {
		t.Errorf("notifications = %v", got)
	}
}

func TestUsersAndTokens(t *testing.T) {
	s, _ := newTestStore(t)
	pw, created, err := s.EnsureAdmin("first-run")
	if err != nil || !created || len(pw) < MinPasswordLen {
		t.Fatalf("EnsureAdmin = %q, %v, %v", pw, created, err)
	}
	if _, again, _ := s.EnsureAdmin("first-run"); again {
		t.Error("EnsureAdmin created a second admin")
	}
	u, err := s.Authenticate(FirstAdmin, pw)
	if err != nil || !u.MustChangePassword || u.Role != RoleAdmin {
		t.Fatalf("Authenticate = %+v, %v", u, err)
	}
	for _, c := range [][2]string{{FirstAdmin, pw + "x"}, {"nobody", pw}, {FirstAdmin, ""}} {
		if _, err := s.Authenticate(c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(%q, %q) = %v", c[0], c[1], err)
		}
	}
	mustApply(t, s, SetPassword{Name: FirstAdmin, Password: "a much better one"})
	if u, err := s.Authenticate(FirstAdmin, "a much better one"); err != nil || u.MustChangePassword {
		t.Errorf("after passwd: %+v, %v", u, err)
	}
	ch := mustApply(t, s, CreateToken{Name: "vms", Role: RoleOperator})
	if !strings.HasPrefix(ch.Secret, tokenPrefix) {
		t.Fatalf("token = %q", ch.Secret)
	}
	if tk, err := s.VerifyToken(ch.Secret); err != nil || tk.Name != "vms" {
		t.Errorf("VerifyToken = %+v, %v", tk, err)
	}
	site, _ := s.Site()
	if strings.Contains(fmt.Sprintf("%#v", site), ch.Secret) {
		t.Error("token stored in clear")
	}
	mustApply(t, s, RevokeToken{Name: "vms"})
	if _, err := s.VerifyToken(ch.Secret); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("revoked token verifies: %v", err)
	}
}

func TestPasswordHashFormat(t *testing.T) {
	h, err := HashPassword("correct horse", Argon2Params{}, strings.NewReader(strings.Repeat("s", 16)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("default hash = %s", h)
	}
	if !VerifyPassword(h, "correct horse") || VerifyPassword(h, "correct horsE") {
		t.Error("verify wrong")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"} {
		if VerifyPassword(bad, "") {
			t.Errorf("VerifyPassword(%q) accepted", bad)
		}
	}
}

// writeV1 builds a schema 1 database by hand, as the first firmware did.
func writeV1(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"meta", "cameras", "users", "settings"} {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keySchema, []byte("1")); err != nil {
			return err
		}
		cams := map[string]string{
			"lobby": `{"name":"lobby","url":"rtsp://192.0.2.5/s","username":"u","password":"p4ss","tcp":true,"retention_hours":72}`,
			"yard":  `{"name":"yard","url":"rtsp://192.0.2.6/s","tcp":false,"retention_hours":0}`,
		}
		for k, v := range cams {
			if err := tx.Bucket(bucketCameras).Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketSettings).Put([]byte("time"), []byte(`{"timezone":"UTC"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateV1ToCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	writeV1(t, path)
	s := openTest(t, path)
	site, err := s.Site()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Camera{
		"lobby": {Name: "lobby", URL: "rtsp://192.0.2.5/s", Username: "u", Password: "p4ss", Transport: TransportTCP, MaxAge: 72 * time.Hour, Enabled: true},
		"yard":  {Name: "yard", URL: "rtsp://192.0.2.6/s", Transport: TransportUDP, Enabled: true},
	}
	if len(site.Cameras) != len(want) {
		t.Fatalf("cameras = %+v", site.Cameras)
	}
	for _, c := range site.Cameras {
		if c != want[c.Name] {
			t.Errorf("migrated %s = %#v, want %#v", c.Name, c, want[c.Name])
		}
	}
	if site.Time.Timezone != "UTC" || site.Cluster.Enabled {
		t.Errorf("settings = %+v %+v", site.Time, site.Cluster)
	}
	// The migrated store takes new changes with an audit log.
	mustApply(t, s, RemoveCamera{Name: "yard"})
	if e, _ := s.Audit(0, 1); len(e) != 1 || e[0].Kind != "camera.remove" {
		t.Errorf("audit after migration = %+v", e)
	}
}

func TestSchemaTooNewRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	s, _ := Open(Options{Path: path})
	s.Close()
	db, _ := bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) })
	db.Close()
	if _, err := Open(Options{Path: path}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open = %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenNeedsPath(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without a path succeeded")
	}
}

func TestOpenLocked(t *testing.T) {
	_, path := newTestStore(t)
	if _, err := Open(Options{Path: path, LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
}
