package slots

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// GRUB environment block constants.
const (
	// EnvSize is the size of a GRUB environment block file.
	EnvSize = 1024
	// EnvHeader is the first line of every block.
	EnvHeader = "# GRUB Environment Block\n"
)

// ErrBadEnv reports bytes that are not a GRUB environment block this package
// can read.
var ErrBadEnv = errors.New("slots: bad GRUB environment block")

// Env is the content of a GRUB environment block: key=value pairs in file
// order. Keys this package does not own (e.g. GRUB's saved_entry) are kept
// as they are.
type Env struct {
	keys []string
	vals map[string]string
}

// Get returns the value of key ("" when unset).
func (e Env) Get(key string) string { return e.vals[key] }

// Set returns a copy of e with key set to value (appended when new).
func (e Env) Set(key, value string) Env {
	n := e.clone()
	if _, ok := n.vals[key]; !ok {
		n.keys = append(n.keys, key)
	}
	n.vals[key] = value
	return n
}

// Keys returns the keys in file order.
func (e Env) Keys() []string { return append([]string(nil), e.keys...) }

func (e Env) clone() Env {
	n := Env{keys: append([]string(nil), e.keys...), vals: make(map[string]string, len(e.vals))}
	for k, v := range e.vals {
		n.vals[k] = v
	}
	return n
}

// Equal reports whether e and o hold the same pairs in the same order.
func (e Env) Equal(o Env) bool {
	if len(e.keys) != len(o.keys) {
		return false
	}
	for i, k := range e.keys {
		if o.keys[i] != k || o.vals[k] != e.vals[k] {
			return false
		}
	}
	return true
}

// String renders the pairs as "k=v k=v" for messages and tests.
func (e Env) String() string {
	var b strings.Builder
	for i, k := range e.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + e.vals[k])
	}
	return b.String()
}

// ParseEnv decodes a GRUB environment block: exactly EnvSize bytes, the
// EnvHeader line, then "key=value\n" lines, then '#' padding to the end.
// Lines starting with '#' are comments. Values holding GRUB's backslash
// escapes are refused (this package never writes them).
func ParseEnv(b []byte) (Env, error) {
	e := Env{vals: map[string]string{}}
	if len(b) != EnvSize {
		return e, fmt.Errorf("%w: %d bytes, want %d", ErrBadEnv, len(b), EnvSize)
	}
	if !bytes.HasPrefix(b, []byte(EnvHeader)) {
		return e, fmt.Errorf("%w: missing header", ErrBadEnv)
	}
	rest := b[len(EnvHeader):]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			// The unterminated tail must be padding.
			if len(bytes.Trim(rest, "#")) != 0 {
				return e, fmt.Errorf("%w: unterminated line %q", ErrBadEnv, rest)
			}
			break
		}
		line := string(rest[:i])
		rest = rest[i+1:]
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return e, fmt.Errorf("%w: bad line %q", ErrBadEnv, line)
		}
		if !validValue(v) {
			return e, fmt.Errorf("%w: unsupported value in line %q", ErrBadEnv, line)
		}
		if _, dup := e.vals[k]; dup {
			return e, fmt.Errorf("%w: key %q set twice", ErrBadEnv, k)
		}
		e.keys = append(e.keys, k)
		e.vals[k] = v
	}
	return e, nil
}

// Marshal encodes e as an EnvSize-byte block padded with '#'.
func (e Env) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(EnvHeader)
	for _, k := range e.keys {
		v := e.vals[k]
		if !validKey(k) || !validValue(v) {
			return nil, fmt.Errorf("%w: cannot encode %q=%q", ErrBadEnv, k, v)
		}
		b.WriteString(k + "=" + v + "\n")
	}
	if b.Len() > EnvSize {
		return nil, fmt.Errorf("%w: %d bytes of variables exceed %d", ErrBadEnv, b.Len(), EnvSize)
	}
	b.Write(bytes.Repeat([]byte{'#'}, EnvSize-b.Len()))
	return b.Bytes(), nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}
