package appliance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/firmware/slots"
)

// installEnv is a running slot a (1.0.0, confirmed) of a qemu board, a
// trusted key and bundles to offer, served from dir and over HTTP.
type installEnv struct {
	app  *App
	m    *slots.Manager
	boot string
	dir  string
	url  string
	key  ed25519.PrivateKey
}

func newInstallEnv(t *testing.T) *installEnv {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &installEnv{boot: t.TempDir(), dir: t.TempDir(), key: key}
	pem, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "firmware.pub")
	if err := os.WriteFile(keys, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if e.m, err = slots.New(slots.Options{Dir: e.boot}); err != nil {
		t.Fatal(err)
	}
	first := e.pack(t, "first.nvrfw", key, "1.0.0", "qemu")
	f, _ := os.Open(first)
	defer f.Close()
	st, _ := f.Stat()
	b, err := bundle.Open(f, st.Size(), bundle.Options{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Provision(context.Background(), b, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(e.dir)))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.app = &App{
		opts: Options{Version: "1.0.0", Board: &board.Profile{Model: "qemu"},
			Firmware: &Firmware{Slots: e.m, Booted: slots.A, TrustedKeys: keys, TempDir: t.TempDir()}},
		log: slog.New(slog.DiscardHandler), hub: events.New(events.Options{}),
	}
	return e
}

// pack writes a bundle of 300 KiB parts into e.dir.
func (e *installEnv) pack(t *testing.T, name string, key ed25519.PrivateKey, version, board string) string {
	t.Helper()
	src := func(part string) bundle.Source {
		data := bytes.Repeat([]byte(part+version), 300<<10/len(part+version))
		return bundle.Source{Name: part, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
	}
	var buf bytes.Buffer
	if _, err := bundle.Pack(&buf, key, bundle.Manifest{Version: version, Boards: []string{board}},
		[]bundle.Source{src(bundle.PartKernel), src(bundle.PartInitramfs)}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInstallFirmware(t *testing.T) {
	_, otherKey, _ := ed25519.GenerateKey(nil)
	tests := []struct {
		name      string
		prepare   func(t *testing.T, e *installEnv) string // returns the source
		downgrade bool
		wantErr   error // nil: installed
	}{
		{"file", func(t *testing.T, e *installEnv) string { return e.pack(t, "new.nvrfw", e.key, "1.1.0", "qemu") }, false, nil},
		{"http", func(t *testing.T, e *installEnv) string {
			e.pack(t, "new.nvrfw", e.key, "1.1.0", "qemu")
			return e.url + "/new.nvrfw"
		}, false, nil},
		{"older with --allow-downgrade", func(t *testing.T, e *installEnv) string { return e.pack(t, "old.nvrfw", e.key, "0.9.0", "qemu") }, true, nil},
		{"older", func(t *testing.T, e *installEnv) string { return e.pack(t, "old.nvrfw", e.key, "0.9.0", "qemu") }, false, bundle.ErrDowngrade},
		{"unknown key", func(t *testing.T, e *installEnv) string { return e.pack(t, "k.nvrfw", otherKey, "1.1.0", "qemu") }, false, bundle.ErrUnknownKey},
		{"wrong board", func(t *testing.T, e *installEnv) string { return e.pack(t, "b.nvrfw", e.key, "1.1.0", "nvr8") }, false, bundle.ErrWrongBoard},
		{"truncated over http", func(t *testing.T, e *installEnv) string {
			p := e.pack(t, "t.nvrfw", e.key, "1.1.0", "qemu")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1000], 0o644)
			return e.url + "/t.nvrfw"
		}, false, bundle.ErrCorrupt},
		{"bad signature", func(t *testing.T, e *installEnv) string {
			p := e.pack(t, "s.nvrfw", e.key, "1.1.0", "qemu")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"version":"1.1.0"`), []byte(`"version":"1.1.1"`), 1), 0o644)
			return p
		}, false, bundle.ErrBadSignature},
		{"missing file", func(*testing.T, *installEnv) string { return "/nonexistent/x.nvrfw" }, false, os.ErrNotExist},
		{"http 404", func(_ *testing.T, e *installEnv) string { return e.url + "/nosuch.nvrfw" }, false, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newInstallEnv(t)
			source := tt.prepare(t, e)
			envBefore, _ := os.ReadFile(filepath.Join(e.boot, slots.EnvFile))
			last := map[string]console.FirmwareProgress{}
			var order []string // steps in the order they started
			res, err := e.app.installFirmware(context.Background(), console.FirmwareInstall{Source: source, AllowDowngrade: tt.downgrade},
				func(p console.FirmwareProgress) {
					if prev, ok := last[p.Step]; ok && p.Done < prev.Done {
						t.Errorf("%s progress went back: %d after %d", p.Step, p.Done, prev.Done)
					}
					if len(order) == 0 || order[len(order)-1] != p.Step {
						order = append(order, p.Step)
					}
					last[p.Step] = p
				})
			if len(order) != len(last) {
				t.Errorf("steps interleaved: %v", order)
			}
			envAfter, _ := os.ReadFile(filepath.Join(e.boot, slots.EnvFile))
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				if !bytes.Equal(envBefore, envAfter) {
					t.Errorf("a refused bundle changed grubenv")
				}
				if _, ok := last[console.StepWrite]; ok {
					t.Errorf("a refused bundle was written")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Slot != "b" || res.Fallback != "a" {
				t.Errorf("result %+v, want slot b, fallback a", res)
			}
			st, err := e.m.Status(slots.A)
			if err != nil || st.Trial != slots.B || st.Default != slots.A || st.Versions[slots.B] != res.Version {
				t.Errorf("slots %+v (%v), want b armed with %s", st, err, res.Version)
			}
			for _, step := range []string{console.StepVerify, console.StepWrite} {
				p, ok := last[step]
				if !ok || p.Total == 0 || p.Done != p.Total {
					t.Errorf("%s progress ended at %+v, want done == total", step, p)
				}
			}
			if w := last[console.StepWrite]; w.Slot != "b" {
				t.Errorf("write progress names slot %q", w.Slot)
			}
			if _, ok := last[console.StepDownload]; ok != strings.HasPrefix(source, "http") {
				t.Errorf("download progress %v for %s", ok, source)
			}
			if left, _ := os.ReadDir(e.app.opts.Firmware.TempDir); len(left) != 0 {
				t.Errorf("downloads left behind: %v", left)
			}
		})
	}
}

// errAny matches any error in TestInstallFirmware's table.
var errAny = errors.New("any error")

func TestInstallFirmwareWithoutSlots(t *testing.T) {
	a := &App{opts: Options{Version: "1.0.0"}, log: slog.New(slog.DiscardHandler), hub: events.New(events.Options{})}
	if _, err := a.installFirmware(context.Background(), console.FirmwareInstall{Source: "/x"}, func(console.FirmwareProgress) {}); !errors.Is(err, errNoSlots) {
		t.Errorf("err = %v, want errNoSlots", err)
	}
}
