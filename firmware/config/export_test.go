package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func populated(t *testing.T) (*Store, string) {
	s, _ := newTestStore(t)
	if _, _, err := s.EnsureAdmin("test"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, AddCamera{Camera: lobby()})
	mustApply(t, s, AddCamera{Camera: Camera{Name: "yard", URL: "rtsp://192.0.2.6/s", Transport: TransportMulticast, MaxAge: 72 * time.Hour}})
	mustApply(t, s, AddUser{Name: "op", Role: RoleOperator, Password: "operator pw"})
	tok := mustApply(t, s, CreateToken{Name: "vms", Role: RoleViewer}).Secret
	mustApply(t, s, SetNetwork{Network: Network{Hostname: "nvr", DNS: []string{"192.0.2.53"}, Interfaces: []Interface{
		{Name: "eth0", Addresses: []string{"192.0.2.10/24"}, Gateway4: "192.0.2.1"}, {Name: "eth0.7", VLAN: 7, Parent: "eth0", DHCP4: true}}}})
	mustApply(t, s, SetStorage{Storage: Storage{DataDir: "/perm/data", CommitInterval: 250 * time.Millisecond, DefaultMaxAge: 720 * time.Hour}})
	mustApply(t, s, SetTime{Time: Time{NTPServers: []string{"pool.ntp.org"}, Timezone: "Europe/Paris"}})
	return s, tok
}

func TestExportImportRoundTrip(t *testing.T) {
	src, tok := populated(t)
	var buf bytes.Buffer
	if err := src.Export(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{"password_cleartext", "s3cret-pw", "password_hash_argon2id", "WARNING", "\nsha256 "} {
		if !strings.Contains(text, want) {
			t.Errorf("export lacks %q", want)
		}
	}
	if strings.Contains(text, tok) {
		t.Error("export holds an API token in clear")
	}
	// A replacement box with its own first-run admin takes the whole site.
	dst, dstPath := newTestStore(t)
	if _, _, err := dst.EnsureAdmin("test"); err != nil {
		t.Fatal(err)
	}
	ch, err := dst.Import("console:admin", "usb.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Effect != Restart || ch.Kind != "site.import" {
		t.Errorf("import change = %s %s", ch.Kind, ch.Effect)
	}
	want, _ := src.Site()
	got, _ := dst.Site()
	if a, b := fmt.Sprintf("%#v", want), fmt.Sprintf("%#v", got); a != b {
		t.Errorf("round trip differs:\n%s\n%s", a, b)
	}
	if c, _ := got.Camera("lobby"); c.Password.Reveal() != "s3cret-pw" {
		t.Errorf("camera password lost")
	}
	if _, err := dst.Authenticate("op", "operator pw"); err != nil {
		t.Errorf("user hash not kept: %v", err)
	}
	if _, err := dst.VerifyToken(tok); err != nil {
		t.Errorf("token hash not kept: %v", err)
	}
	// And it survives a reopen.
	dst.Close()
	again := openTest(t, dstPath)
	if s, _ := again.Site(); fmt.Sprintf("%#v", s) != fmt.Sprintf("%#v", want) {
		t.Error("imported site changed across reopen")
	}
}

func TestImportRefusesAndChangesNothing(t *testing.T) {
	src, _ := populated(t)
	var buf bytes.Buffer
	if err := src.Export(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	site, _ := src.Site()
	site.Cameras[0].URL = "http://nope/"
	invalidFile, err := EncodeExport(&site, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want error
	}{
		{"flipped byte", strings.Replace(good, "lobby", "lobbz", 1), ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"no trailer", good[:strings.LastIndex(good, "sha256")], ErrCorrupt},
		{"empty", "", ErrCorrupt},
		{"other file", "hello\nsha256 00\n", ErrCorrupt},
		{"valid checksum, invalid camera", string(invalidFile), ErrInvalid},
	}
	dst, _ := newTestStore(t)
	mustApply(t, dst, AddCamera{Camera: Camera{Name: "keep", URL: "rtsp://192.0.2.99/", Transport: TransportTCP}})
	before, _ := dst.Site()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dst.Import("test", tt.name, strings.NewReader(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Import = %v, want %v", err, tt.want)
			}
			after, _ := dst.Site()
			if fmt.Sprintf("%#v", after) != fmt.Sprintf("%#v", before) {
				t.Error("refused import changed the site")
			}
		})
	}
}

// FuzzImport feeds arbitrary bytes to the export parser: it must not panic,
// and whatever it accepts must be a valid site that re-exports and
// re-parses to the same thing.
func FuzzImport(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.conf"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(exportMagic + "{}\nsha256 0000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		site, err := ParseExport(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if err := Validate(&site); err != nil {
			t.Fatalf("accepted an invalid site: %v", err)
		}
		again, err := EncodeExport(&site, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		site2, err := ParseExport(again)
		if err != nil {
			t.Fatalf("re-export does not parse: %v", err)
		}
		if fmt.Sprintf("%#v", site) != fmt.Sprintf("%#v", site2) {
			t.Fatalf("re-export differs")
		}
	})
}

// TestSeedExportParses checks the committed sample export; NVR_WRITE_SEED=1
// regenerates it and the FuzzImport seed corpus.
func TestSeedExportParses(t *testing.T) {
	if os.Getenv("NVR_WRITE_SEED") == "1" {
		src, _ := populated(t)
		var buf bytes.Buffer
		if err := src.Export(&buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "site.conf"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join("testdata", "fuzz", "FuzzImport")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		seeds := map[string][]byte{
			"site":      buf.Bytes(),
			"corrupt":   bytes.Replace(buf.Bytes(), []byte("lobby"), []byte("lobbz"), 1),
			"empty":     []byte(exportMagic + "{}\n"),
			"truncated": buf.Bytes()[:buf.Len()/2],
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join("testdata", "site.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site, err := ParseExport(b)
	if err != nil {
		t.Fatalf("committed seed export: %v", err)
	}
	if len(site.Cameras) != 2 || len(site.Users) != 2 || len(site.Tokens) != 1 {
		t.Errorf("seed site = %+v", site)
	}
}
