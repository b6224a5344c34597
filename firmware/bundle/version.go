package bundle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadVersion reports a version string that is not semver-like.
var ErrBadVersion = errors.New("bundle: not a semver-like version")

// Version is a parsed semver-like version: MAJOR.MINOR.PATCH with an optional
// leading "v", optional "-PRERELEASE" and optional "+BUILD". MINOR and PATCH
// may be omitted (they count as 0), so "2" and "2.0.0" are equal.
type Version struct {
	Major, Minor, Patch uint64
	// Pre holds the dot-separated pre-release identifiers ("rc.1" -> [rc 1]).
	Pre []string
	// Build is the build metadata after "+"; it never affects ordering.
	Build string
}

// ParseVersion parses a semver-like version string.
func ParseVersion(s string) (Version, error) {
	var v Version
	rest := strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.Build = rest[i+1:]
		rest = rest[:i]
		if v.Build == "" {
			return Version{}, fmt.Errorf("%w: %q: empty build metadata", ErrBadVersion, s)
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		rest = rest[:i]
		v.Pre = strings.Split(pre, ".")
		for _, id := range v.Pre {
			if id == "" || !isIdent(id) {
				return Version{}, fmt.Errorf("%w: %q: bad pre-release %q", ErrBadVersion, s, pre)
			}
		}
	}
	nums := strings.Split(rest, ".")
	if len(nums) > 3 {
		return Version{}, fmt.Errorf("%w: %q: more than three numbers", ErrBadVersion, s)
	}
	dst := []*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, n := range nums {
		if n == "" || !isDigits(n) {
			return Version{}, fmt.Errorf("%w: %q: %q is not a number", ErrBadVersion, s, n)
		}
		x, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return Version{}, fmt.Errorf("%w: %q: %v", ErrBadVersion, s, err)
		}
		*dst[i] = x
	}
	return v, nil
}

// String formats v canonically: MAJOR.MINOR.PATCH[-PRE][+BUILD].
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare orders versions as semver 2.0 does: numbers numerically, then a
// version with a pre-release sorts before the same version without one;
// pre-release identifiers compare left to right, numeric ones numerically and
// below alphanumeric ones, which compare in ASCII order; a shorter list of
// equal identifiers sorts first. Build metadata is ignored. It returns -1, 0
// or +1.
func (v Version) Compare(w Version) int {
	for _, p := range [][2]uint64{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if p[0] != p[1] {
			if p[0] < p[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		if c := compareIdent(v.Pre[i], w.Pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.Pre) < len(w.Pre):
		return -1
	case len(v.Pre) > len(w.Pre):
		return 1
	}
	return 0
}

func compareIdent(a, b string) int {
	an, bn := isDigits(a), isDigits(b)
	switch {
	case an && bn:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

// CompareVersions parses and compares two version strings (see
// Version.Compare).
func CompareVersions(a, b string) (int, error) {
	va, err := ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}
