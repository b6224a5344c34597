package profiles_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/profiles"
)

func TestBuiltInProfilesParse(t *testing.T) {
	names := profiles.Names()
	if len(names) < 2 {
		t.Fatalf("built-in profiles %v, want at least generic-x86-2u and qemu", names)
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			b, err := profiles.Lookup(n)
			if err != nil {
				t.Fatal(err)
			}
			p, err := board.ParseProfile(n+".board", b)
			if err != nil {
				t.Fatal(err)
			}
			if p.Model != n {
				t.Errorf("model %q in file %s.board", p.Model, n)
			}
			if _, ok := p.RecordingArray(); !ok {
				t.Error("no recording array")
			}
			if len(p.PSUs) == 0 || len(p.Bays) == 0 || p.Watchdog == nil {
				t.Errorf("profile lacks PSUs, bays or watchdog: %+v", p)
			}
		})
	}
	if _, err := profiles.Lookup("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lookup(nope) = %v", err)
	}
}
