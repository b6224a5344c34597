package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of new password hashes.
// Every hash records its own parameters (PHC string form), so changing them
// later keeps old hashes verifiable.
type Argon2Params struct {
	// Time is the number of passes; default 3 (RFC 9106 second recommendation).
	Time uint32
	// MemoryKiB is the memory cost in KiB; default 65536 (64 MiB).
	MemoryKiB uint32
	// Threads is the parallelism; default 2 (the appliance's small CPUs).
	Threads uint8
}

// Fixed parts of every hash: a 16-byte random salt per user and a 32-byte key.
const (
	saltLen = 16
	keyLen  = 32
	// maxArgonMemoryKiB bounds what a stored hash may ask of Verify (1 GiB),
	// so an imported file cannot exhaust memory.
	maxArgonMemoryKiB = 1 << 20
	maxArgonTime      = 64
)

// MinPasswordLen and MaxPasswordLen bound a password's length in bytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// ErrBadCredentials is returned by Authenticate and VerifyToken for an
// unknown user or token or a wrong password; it never says which.
var ErrBadCredentials = errors.New("bad credentials")

func (p Argon2Params) withDefaults() Argon2Params {
	if p.Time == 0 {
		p.Time = 3
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = 64 * 1024
	}
	if p.Threads == 0 {
		p.Threads = 2
	}
	return p
}

// CheckPassword enforces the password policy: MinPasswordLen to
// MaxPasswordLen bytes of valid UTF-8 without control characters.
func CheckPassword(pw string) error {
	if len(pw) < MinPasswordLen {
		return invalid("password", "must be at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return invalid("password", "must be at most %d bytes", MaxPasswordLen)
	}
	if !utf8.ValidString(pw) {
		return invalid("password", "must be valid UTF-8")
	}
	for _, r := range pw {
		if r < 0x20 || r == 0x7f {
			return invalid("password", "must not contain control characters")
		}
	}
	return nil
}

// HashPassword returns pw's argon2id hash in PHC string form:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt, base64 raw std>$<key, base64 raw std>
//
// with a fresh salt read from rnd.
func HashPassword(pw string, p Argon2Params, rnd io.Reader) (string, error) {
	p = p.withDefaults()
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

type phc struct {
	params    Argon2Params
	salt, key []byte
}

// parsePHC parses and bounds-checks a stored hash.
func parsePHC(h string) (phc, error) {
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, errors.New("not an argon2id v19 PHC hash")
	}
	var out phc
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return phc{}, fmt.Errorf("bad argon2id parameter %q", printable(kv))
		}
		switch k {
		case "m":
			out.params.MemoryKiB = uint32(n)
		case "t":
			out.params.Time = uint32(n)
		case "p":
			if n > 255 {
				return phc{}, errors.New("argon2id parallelism over 255")
			}
			out.params.Threads = uint8(n)
		default:
			return phc{}, fmt.Errorf("unknown argon2id parameter %q", printable(k))
		}
	}
	p := out.params
	if p.Time < 1 || p.Time > maxArgonTime || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemoryKiB {
		return phc{}, errors.New("argon2id parameters out of range")
	}
	var err error
	if out.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(out.salt) < 8 || len(out.salt) > 64 {
		return phc{}, errors.New("bad argon2id salt")
	}
	if out.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(out.key) < 16 || len(out.key) > 64 {
		return phc{}, errors.New("bad argon2id key")
	}
	return out, nil
}

// VerifyPassword reports whether pw matches the PHC hash, in constant time
// with respect to the key.
func VerifyPassword(hash, pw string) bool {
	h, err := parsePHC(hash)
	if err != nil {
		return false
	}
	key := argon2.IDKey([]byte(pw), h.salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// tokenPrefix starts every API token, so a leaked one is recognisable.
const tokenPrefix = "nvrt_"

// newToken returns a fresh API token (160 random bits) and its stored hash.
func newToken(rnd io.Reader) (token, hash string, err error) {
	b := make([]byte, 20)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", "", fmt.Errorf("create token: read random: %w", err)
	}
	token = tokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return token, TokenHash(token), nil
}

// TokenHash is the stored form of an API token: its lowercase hex SHA-256.
// Tokens carry 160 random bits, so a fast hash is enough.
func TokenHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}
