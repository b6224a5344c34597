package slots

import (
	"bytes"
	"errors"
	"testing"
)

func envOf(kv ...string) Env {
	var e Env
	for i := 0; i < len(kv); i += 2 {
		e = e.Set(kv[i], kv[i+1])
	}
	return e
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name     string
		env      Env
		want     Slot
		wantNext string
	}{
		{"empty block boots a", envOf(), A, ""},
		{"default a", envOf(KeyDefault, "a", KeyTrial, ""), A, "nvr_default=a nvr_trial="},
		{"default b", envOf(KeyDefault, "b"), B, "nvr_default=b"},
		{"garbage default boots a", envOf(KeyDefault, "zz"), A, "nvr_default=zz"},
		{"trial b once", envOf(KeyDefault, "a", KeyTrial, "b"), B, "nvr_default=a nvr_trial="},
		{"trial a from b", envOf(KeyDefault, "b", KeyTrial, "a"), A, "nvr_default=b nvr_trial="},
		{"garbage trial ignored", envOf(KeyDefault, "b", KeyTrial, "c"), B, "nvr_default=b nvr_trial=c"},
		{"other keys kept", envOf("saved_entry", "x", KeyTrial, "b"), B, "saved_entry=x nvr_trial="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := Decide(tt.env)
			if got != tt.want || next.String() != tt.wantNext {
				t.Fatalf("Decide(%s) = %s, %q; want %s, %q", tt.env, got, next, tt.want, tt.wantNext)
			}
			// After the trial is consumed, the next power-on boots the
			// default: a failed trial falls back by itself.
			again, _ := Decide(next)
			if def, _ := Decide(envOf(KeyDefault, tt.env.Get(KeyDefault))); again != def {
				t.Fatalf("second boot %s, want default %s", again, def)
			}
		})
	}
}

func TestBootedSlot(t *testing.T) {
	tests := []struct {
		cmdline string
		want    Slot
		ok      bool
	}{
		{"console=ttyS0 nvr.slot=b quiet", B, true},
		{"nvr.slot=a", A, true},
		{"nvr.slot=c", "", false},
		{"console=ttyS0", "", false},
	}
	for _, tt := range tests {
		got, err := BootedSlot(tt.cmdline)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("BootedSlot(%q) = %q, %v", tt.cmdline, got, err)
		}
	}
}

func TestEnvRoundTrip(t *testing.T) {
	e := envOf(KeyDefault, "a", KeyTrial, "", "saved_entry", "nvr")
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != EnvSize || !bytes.HasPrefix(b, []byte(EnvHeader+"nvr_default=a\nnvr_trial=\nsaved_entry=nvr\n#")) || b[EnvSize-1] != '#' {
		t.Fatalf("block %q", b[:80])
	}
	back, err := ParseEnv(b)
	if err != nil || !back.Equal(e) {
		t.Fatalf("ParseEnv: %s, %v", back, err)
	}
}

func TestParseEnvRejects(t *testing.T) {
	good, _ := envOf("k", "v").Marshal()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := map[string][]byte{
		"short":         good[:EnvSize-1],
		"long":          append(bytes.Clone(good), '#'),
		"no header":     mod(func(b []byte) []byte { b[0] = 'X'; return b }),
		"no equals":     mod(func(b []byte) []byte { copy(b[len(EnvHeader):], "kv\n"); return b }),
		"bad key":       mod(func(b []byte) []byte { copy(b[len(EnvHeader):], "k-=v\n"); return b }),
		"escape":        mod(func(b []byte) []byte { copy(b[len(EnvHeader):], "k=\\\n"); return b }),
		"duplicate key": mod(func(b []byte) []byte { copy(b[len(EnvHeader):], "k=v\nk=w\n"); return b }),
		"junk padding":  mod(func(b []byte) []byte { b[EnvSize-2] = 'x'; return b }),
	}
	for name, b := range tests {
		if _, err := ParseEnv(b); !errors.Is(err, ErrBadEnv) {
			t.Errorf("%s: ParseEnv = %v, want ErrBadEnv", name, err)
		}
	}
	big := envOf("k", string(bytes.Repeat([]byte("v"), EnvSize)))
	if _, err := big.Marshal(); !errors.Is(err, ErrBadEnv) {
		t.Errorf("Marshal of an oversized block: %v", err)
	}
}

// FuzzParseEnv: ParseEnv never panics, and whatever it accepts re-encodes
// to a block that parses to the same pairs.
func FuzzParseEnv(f *testing.F) {
	good, _ := envOf(KeyDefault, "a", KeyTrial, "b").Marshal()
	f.Add(good)
	f.Add([]byte(EnvHeader))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnv(b)
		if err != nil {
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed block: %v", err)
		}
		back, err := ParseEnv(out)
		if err != nil || !back.Equal(e) {
			t.Fatalf("round trip: %s vs %s, %v", back, e, err)
		}
		s, next := Decide(e)
		if !s.Valid() {
			t.Fatalf("Decide chose %q", s)
		}
		if _, err := next.Marshal(); err != nil {
			t.Fatalf("Decide's env does not encode: %v", err)
		}
	})
}
