package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Format constants; see the layout in doc.go.
const (
	// Magic opens every bundle.
	Magic = "NVRFW\x00\r\n"
	// FormatVersion is the layout version this package writes and reads.
	FormatVersion = 1
	// HeaderSize is the fixed header: magic, format, flags, manifest length.
	HeaderSize = 16
	// MaxManifestSize bounds the manifest a reader will load into memory.
	MaxManifestSize = 64 << 10
	// MaxParts bounds the number of parts in one bundle.
	MaxParts = 16

	signContext = "nvrfw bundle v1\x00"
)

// Part names used by the firmware image.
const (
	PartKernel    = "kernel"
	PartInitramfs = "initramfs"
)

// Errors a caller acts on. Open and Pack wrap them with the details.
var (
	// ErrCorrupt: the bytes are not a well-formed bundle: bad magic or
	// format, truncated, trailing bytes, malformed manifest, or a part whose
	// size or SHA-256 does not match the manifest.
	ErrCorrupt = errors.New("bundle: corrupt")
	// ErrUnknownKey: the bundle is signed by a key that is not trusted.
	ErrUnknownKey = errors.New("bundle: signed by an unknown key")
	// ErrBadSignature: the signature does not verify with the trusted key
	// the manifest names (the manifest or header was altered, or forged).
	ErrBadSignature = errors.New("bundle: bad signature")
	// ErrWrongBoard: the bundle does not list the board it is checked for.
	ErrWrongBoard = errors.New("bundle: not built for this board")
	// ErrDowngrade: the bundle is older than the running version and the
	// caller did not allow downgrades.
	ErrDowngrade = errors.New("bundle: downgrade not allowed")
	// ErrBelowMinimum: the running version is below the bundle's minimum
	// version to upgrade from.
	ErrBelowMinimum = errors.New("bundle: running version is below the bundle's minimum")
)

// Part describes one payload of a bundle.
type Part struct {
	// Name identifies the part ("kernel", "initramfs"): 1-64 bytes of
	// [a-z0-9._-], unique within the bundle.
	Name string `json:"name"`
	// Size is the part's exact length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the part's bytes.
	SHA256 string `json:"sha256"`
}

// Manifest is the signed description of a bundle.
type Manifest struct {
	// Format is FormatVersion.
	Format int `json:"format"`
	// Version is the firmware's semver-like version (see ParseVersion).
	Version string `json:"version"`
	// MinVersion, when set, is the lowest running version that may install
	// this bundle.
	MinVersion string `json:"min_version,omitempty"`
	// Boards lists the board models the firmware fits; at least one.
	Boards []string `json:"boards"`
	// BuildID identifies the build (the source revision); informational.
	BuildID string `json:"build_id,omitempty"`
	// KeyID names the signing key (see KeyID).
	KeyID string `json:"key_id"`
	// Parts lists the payloads in the order they follow the signature.
	Parts []Part `json:"parts"`
}

// Part returns the manifest entry named name.
func (m *Manifest) Part(name string) (Part, bool) {
	for _, p := range m.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// validate checks the manifest's own consistency (not the policy).
func (m *Manifest) validate() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("%w: manifest format %d, want %d", ErrCorrupt, m.Format, FormatVersion)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return fmt.Errorf("%w: manifest version: %w", ErrCorrupt, err)
	}
	if m.MinVersion != "" {
		if _, err := ParseVersion(m.MinVersion); err != nil {
			return fmt.Errorf("%w: manifest min_version: %w", ErrCorrupt, err)
		}
	}
	if len(m.Boards) == 0 {
		return fmt.Errorf("%w: manifest lists no board", ErrCorrupt)
	}
	for _, b := range m.Boards {
		if b == "" {
			return fmt.Errorf("%w: manifest lists an empty board", ErrCorrupt)
		}
	}
	if len(m.Parts) == 0 || len(m.Parts) > MaxParts {
		return fmt.Errorf("%w: manifest has %d parts, want 1..%d", ErrCorrupt, len(m.Parts), MaxParts)
	}
	seen := make(map[string]bool, len(m.Parts))
	for _, p := range m.Parts {
		if !validPartName(p.Name) {
			return fmt.Errorf("%w: bad part name %q", ErrCorrupt, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: part %q listed twice", ErrCorrupt, p.Name)
		}
		seen[p.Name] = true
		if p.Size < 0 || p.Size > 1<<40 {
			return fmt.Errorf("%w: part %q has size %d", ErrCorrupt, p.Name, p.Size)
		}
		if h, err := hex.DecodeString(p.SHA256); err != nil || len(h) != sha256.Size {
			return fmt.Errorf("%w: part %q has a malformed sha256", ErrCorrupt, p.Name)
		}
	}
	return nil
}

func validPartName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// header encodes the fixed header for a manifest of n bytes.
func header(n int) []byte {
	h := make([]byte, HeaderSize)
	copy(h, Magic)
	binary.BigEndian.PutUint16(h[8:], FormatVersion)
	binary.BigEndian.PutUint16(h[10:], 0)
	binary.BigEndian.PutUint32(h[12:], uint32(n))
	return h
}

// signedBytes is what the signature covers: a context string, the header
// and the manifest JSON.
func signedBytes(hdr, manifest []byte) []byte {
	b := make([]byte, 0, len(signContext)+len(hdr)+len(manifest))
	b = append(b, signContext...)
	b = append(b, hdr...)
	return append(b, manifest...)
}

// Options is the verification policy of Open. The zero value checks only
// the signature (against no keys, so it fails): set Keys.
type Options struct {
	// Keys are the trusted public keys; the bundle must be signed by one.
	Keys []ed25519.PublicKey
	// Board, when set, must be listed in the manifest's Boards.
	Board string
	// CurrentVersion, when set, is the running version: the bundle must not
	// be older (unless AllowDowngrade) and the running version must be at
	// least the manifest's MinVersion. Empty skips both checks.
	CurrentVersion string
	// AllowDowngrade permits installing a version older than CurrentVersion.
	// MinVersion is still enforced.
	AllowDowngrade bool
}

// Bundle is an opened, verified bundle. Its parts are read from the
// underlying io.ReaderAt on demand; a Bundle is safe for concurrent use if
// that ReaderAt is.
type Bundle struct {
	// Manifest is the verified manifest.
	Manifest Manifest
	r        io.ReaderAt
	offsets  []int64 // offset of each part, parallel to Manifest.Parts
}

// Open reads and verifies the bundle of size bytes in r: the header, the
// signature over the manifest (against opts.Keys), the policy in opts, and
// then every part's size and SHA-256, streamed in 64 KiB reads. It returns an
// error wrapping one of the package's sentinel errors when the bundle must be
// refused.
func Open(r io.ReaderAt, size int64, opts Options) (*Bundle, error) {
	m, dataOff, err := readManifest(r, size, opts.Keys)
	if err != nil {
		return nil, err
	}
	if err := checkPolicy(&m, opts); err != nil {
		return nil, err
	}
	b := &Bundle{Manifest: m, r: r}
	off := dataOff
	for _, p := range m.Parts {
		b.offsets = append(b.offsets, off)
		off += p.Size
	}
	if off != size {
		if off > size {
			return nil, fmt.Errorf("%w: truncated: parts end at byte %d, file has %d", ErrCorrupt, off, size)
		}
		return nil, fmt.Errorf("%w: %d trailing bytes after the last part", ErrCorrupt, size-off)
	}
	for i, p := range m.Parts {
		if err := checkPart(io.NewSectionReader(r, b.offsets[i], p.Size), p); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// readManifest reads the header, manifest and signature and verifies the
// signature. It returns the manifest and the offset of the first part.
func readManifest(r io.ReaderAt, size int64, keys []ed25519.PublicKey) (Manifest, int64, error) {
	var m Manifest
	if size < HeaderSize {
		return m, 0, fmt.Errorf("%w: truncated: %d bytes, header needs %d", ErrCorrupt, size, HeaderSize)
	}
	hdr := make([]byte, HeaderSize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return m, 0, fmt.Errorf("bundle: read header: %w", err)
	}
	if string(hdr[:8]) != Magic {
		return m, 0, fmt.Errorf("%w: bad magic %q", ErrCorrupt, hdr[:8])
	}
	if f := binary.BigEndian.Uint16(hdr[8:]); f != FormatVersion {
		return m, 0, fmt.Errorf("%w: format version %d, this firmware reads %d", ErrCorrupt, f, FormatVersion)
	}
	if fl := binary.BigEndian.Uint16(hdr[10:]); fl != 0 {
		return m, 0, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, fl)
	}
	n := int64(binary.BigEndian.Uint32(hdr[12:]))
	if n == 0 || n > MaxManifestSize {
		return m, 0, fmt.Errorf("%w: manifest length %d, want 1..%d", ErrCorrupt, n, MaxManifestSize)
	}
	dataOff := HeaderSize + n + ed25519.SignatureSize
	if size < dataOff {
		return m, 0, fmt.Errorf("%w: truncated: %d bytes, manifest and signature need %d", ErrCorrupt, size, dataOff)
	}
	buf := make([]byte, n+ed25519.SignatureSize)
	if _, err := r.ReadAt(buf, HeaderSize); err != nil {
		return m, 0, fmt.Errorf("bundle: read manifest: %w", err)
	}
	raw, sig := buf[:n], buf[n:]
	msg := signedBytes(hdr, raw)
	for _, k := range keys {
		if ed25519.Verify(k, msg, sig) {
			return parseManifest(raw, dataOff)
		}
	}
	// The key ID is read from the unverified manifest only to choose between
	// ErrUnknownKey and ErrBadSignature.
	var probe struct {
		KeyID string `json:"key_id"`
	}
	if json.Unmarshal(raw, &probe) == nil && !slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return KeyID(k) == probe.KeyID }) {
		return m, 0, fmt.Errorf("%w: key id %q", ErrUnknownKey, probe.KeyID)
	}
	return m, 0, fmt.Errorf("%w (key id %q)", ErrBadSignature, probe.KeyID)
}

// parseManifest decodes and validates a manifest whose signature verified.
func parseManifest(raw []byte, dataOff int64) (Manifest, int64, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return m, 0, fmt.Errorf("%w: manifest JSON: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return m, 0, fmt.Errorf("%w: data after the manifest JSON", ErrCorrupt)
	}
	if err := m.validate(); err != nil {
		return m, 0, err
	}
	return m, dataOff, nil
}

// checkPolicy applies the board and version rules of opts to m.
func checkPolicy(m *Manifest, opts Options) error {
	if opts.Board != "" && !slices.Contains(m.Boards, opts.Board) {
		return fmt.Errorf("%w: bundle fits %v, this board is %q", ErrWrongBoard, m.Boards, opts.Board)
	}
	if opts.CurrentVersion == "" {
		return nil
	}
	cur, err := ParseVersion(opts.CurrentVersion)
	if err != nil {
		return fmt.Errorf("bundle: running version: %w", err)
	}
	if m.MinVersion != "" {
		min, _ := ParseVersion(m.MinVersion) // validated
		if cur.Compare(min) < 0 {
			return fmt.Errorf("%w: running %s, bundle %s needs at least %s", ErrBelowMinimum, opts.CurrentVersion, m.Version, m.MinVersion)
		}
	}
	v, _ := ParseVersion(m.Version) // validated
	if v.Compare(cur) < 0 && !opts.AllowDowngrade {
		return fmt.Errorf("%w: bundle %s is older than running %s", ErrDowngrade, m.Version, opts.CurrentVersion)
	}
	return nil
}

// checkPart streams r (exactly p.Size bytes) and compares its SHA-256.
func checkPart(r io.Reader, p Part) error {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 64<<10))
	if err != nil {
		return fmt.Errorf("bundle: read part %q: %w", p.Name, err)
	}
	if n != p.Size {
		return fmt.Errorf("%w: part %q truncated: %d of %d bytes", ErrCorrupt, p.Name, n, p.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%w: part %q: sha256 %s, manifest says %s", ErrCorrupt, p.Name, got, p.SHA256)
	}
	return nil
}

// Part returns a reader of the named part's bytes and its manifest entry.
// The bytes were verified by Open; a consumer that cannot trust the
// underlying file not to change since (e.g. an installer) re-hashes while it
// copies (see Part.SHA256).
func (b *Bundle) Part(name string) (*io.SectionReader, Part, error) {
	for i, p := range b.Manifest.Parts {
		if p.Name == name {
			return io.NewSectionReader(b.r, b.offsets[i], p.Size), p, nil
		}
	}
	return nil, Part{}, fmt.Errorf("bundle: no part %q in bundle %s", name, b.Manifest.Version)
}
