package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Source is one part to pack: its name and a way to read its bytes. Pack
// reads every source twice (once to hash, once to copy) and fails if the
// two reads differ, so a file changing during packing is never signed.
type Source struct {
	// Name is the part name (see Part.Name).
	Name string
	// Open returns a fresh reader of the part's bytes.
	Open func() (io.ReadCloser, error)
}

// Pack writes a bundle to w: m's Version, MinVersion, Boards and BuildID are
// kept; Format, KeyID and Parts are filled in from key and sources. Nothing
// is written to w before every source has been hashed and the manifest
// validated; w may still hold a partial bundle if a later write fails, so
// callers write to a temporary file and rename it.
func Pack(w io.Writer, key ed25519.PrivateKey, m Manifest, sources []Source) (Manifest, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Manifest{}, fmt.Errorf("%w: private key has %d bytes", ErrBadKey, len(key))
	}
	m.Format = FormatVersion
	m.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	m.Parts = nil
	for _, s := range sources {
		p, err := hashSource(s)
		if err != nil {
			return Manifest{}, err
		}
		m.Parts = append(m.Parts, p)
	}
	if err := m.validate(); err != nil {
		return Manifest{}, fmt.Errorf("bundle: pack: invalid manifest: %w", err)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Manifest{}, fmt.Errorf("bundle: encode manifest: %w", err)
	}
	if len(raw) > MaxManifestSize {
		return Manifest{}, fmt.Errorf("bundle: manifest is %d bytes, limit %d", len(raw), MaxManifestSize)
	}
	hdr := header(len(raw))
	sig := ed25519.Sign(key, signedBytes(hdr, raw))
	for _, b := range [][]byte{hdr, raw, sig} {
		if _, err := w.Write(b); err != nil {
			return Manifest{}, fmt.Errorf("bundle: write header: %w", err)
		}
	}
	for i, s := range sources {
		if err := copySource(w, s, m.Parts[i]); err != nil {
			return Manifest{}, err
		}
	}
	return m, nil
}

func hashSource(s Source) (Part, error) {
	rc, err := s.Open()
	if err != nil {
		return Part{}, fmt.Errorf("bundle: open part %q: %w", s.Name, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, rc, make([]byte, 64<<10))
	if err != nil {
		return Part{}, fmt.Errorf("bundle: read part %q: %w", s.Name, err)
	}
	return Part{Name: s.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func copySource(w io.Writer, s Source, p Part) error {
	rc, err := s.Open()
	if err != nil {
		return fmt.Errorf("bundle: reopen part %q: %w", s.Name, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(rc, p.Size+1), make([]byte, 64<<10))
	if err != nil {
		return fmt.Errorf("bundle: copy part %q: %w", s.Name, err)
	}
	if n != p.Size || hex.EncodeToString(h.Sum(nil)) != p.SHA256 {
		return fmt.Errorf("bundle: part %q changed while packing", s.Name)
	}
	return nil
}
