package bundle

import (
	"errors"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"v1.0.0", "1", 0},
		{"1.2", "1.2.0", 0},
		{"1.0.0+abc", "1.0.0+def", 0},
		{"1.0.0", "1.0.1", -1},
		{"1.10.0", "1.9.0", 1},
		{"2.0.0", "1.99.99", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1},
		{"0.0.0-dev+abc", "0.0.1", -1},
	}
	for _, tt := range tests {
		got, err := CompareVersions(tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d", tt.a, tt.b, got, err, tt.want)
		}
		back, _ := CompareVersions(tt.b, tt.a)
		if back != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, not antisymmetric", tt.b, tt.a, back)
		}
	}
}

func TestParseVersionRejects(t *testing.T) {
	for _, s := range []string{"", "v", "1.2.3.4", "1..2", "a.b.c", "1.0.0-", "1.0.0+", "1.0.0-a..b", "1.0.0-ü", "-1.0", "38a2003", "99999999999999999999"} {
		if _, err := ParseVersion(s); !errors.Is(err, ErrBadVersion) {
			t.Errorf("ParseVersion(%q) = %v, want ErrBadVersion", s, err)
		}
	}
	v, err := ParseVersion("v2.5.1-rc.3+g1234")
	if err != nil || v.String() != "2.5.1-rc.3+g1234" {
		t.Fatalf("ParseVersion: %v %v", v, err)
	}
}
