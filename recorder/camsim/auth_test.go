package camsim

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	creds := PathConfig{User: "admin", Pass: "s3cret"}
	for _, mode := range []AuthMode{AuthAny, AuthBasic, AuthDigest} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			s := startSim(t, Options{Auth: mode}, map[string]PathConfig{"locked": creds, "open": {}})
			for _, tt := range []struct {
				name, path, user, pass string
				ok                     bool
			}{
				{"right", "locked", "admin", "s3cret", true},
				{"wrong password", "locked", "admin", "nope", false},
				{"wrong user", "locked", "root", "s3cret", false},
				{"none", "locked", "", "", false},
				{"open path", "open", "", "", true},
				{"open path with credentials", "open", "x", "y", true},
			} {
				t.Run(tt.name, func(t *testing.T) {
					r, err := dialReader(t, s, tt.path, readOpts{transport: gortsplib.TransportTCP, user: tt.user, pass: tt.pass})
					if !tt.ok {
						if err == nil {
							r.c.Close()
							t.Fatal("accepted")
						}
						if !strings.Contains(err.Error(), "401") {
							t.Errorf("refused with %v, want 401", err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					defer r.c.Close()
					if _, err := r.c.Play(nil); err != nil {
						t.Fatal(err)
					}
					r.waitFrames(t, 0, 2, 3*time.Second)
					r.mu.Lock()
					seen := r.authSeen
					r.mu.Unlock()
					want := map[AuthMode]string{AuthBasic: "Basic ", AuthDigest: "Digest ", AuthAny: ""}[mode]
					if tt.path == "locked" && (len(seen) == 0 || !strings.HasPrefix(seen[0], want)) {
						t.Errorf("client authenticated with %q, want a %q header", seen, want)
					}
				})
			}
		})
	}
}
