package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The export file is UTF-8 text:
//
//	# nvrd site configuration export, format 1
//	# exported 2026-11-25T17:00:00Z at schema 3
//	# WARNING: holds camera passwords in clear text ("password_cleartext") and
//	# users' argon2id password hashes: keep it as safe as the appliance.
//	{ ...siteDoc as indented JSON... }
//	sha256 <64 lowercase hex digits>
//
// The trailer is the SHA-256 of every byte before it (all the lines above,
// newlines included). Comment lines start with '#' and may only precede the
// JSON. Durations are text ("720h0m0s").
const (
	exportMagic = "# nvrd site configuration export, format 1\n"
	// MaxExportSize bounds an export file.
	MaxExportSize = 4 << 20
)

// ErrCorrupt marks an export file that fails its checksum or its format.
var ErrCorrupt = errors.New("corrupt configuration file")

// Export writes the whole configuration, checksummed, to w.
func (s *Store) Export(w io.Writer) error {
	site, err := s.Site()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	b, err := EncodeExport(&site, s.opts.Now())
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}

// EncodeExport renders site as an export file stamped with at.
func EncodeExport(site *Site, at time.Time) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(exportMagic)
	fmt.Fprintf(&buf, "# exported %s at schema %d\n", at.UTC().Format(time.RFC3339), SchemaVersion)
	buf.WriteString("# WARNING: holds camera passwords in clear text (\"password_cleartext\") and\n")
	buf.WriteString("# users' argon2id password hashes: keep it as safe as the appliance.\n")
	body, err := json.MarshalIndent(toSiteDoc(site), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export: encode: %w", err)
	}
	buf.Write(body)
	buf.WriteByte('\n')
	sum := sha256.Sum256(buf.Bytes())
	fmt.Fprintf(&buf, "sha256 %s\n", hex.EncodeToString(sum[:]))
	return buf.Bytes(), nil
}

// ParseExport checks an export file's checksum and format and returns the
// site it holds, validated. Errors wrap ErrCorrupt (damaged or not an export)
// or ErrInvalid (well-formed but refused).
func ParseExport(data []byte) (Site, error) {
	if len(data) > MaxExportSize {
		return Site{}, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxExportSize)
	}
	if !bytes.HasPrefix(data, []byte(exportMagic)) {
		return Site{}, fmt.Errorf("%w: not an nvrd configuration export (first line)", ErrCorrupt)
	}
	trimmed := bytes.TrimSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(trimmed, '\n')
	if i < 0 {
		return Site{}, fmt.Errorf("%w: no checksum line", ErrCorrupt)
	}
	body, trailer := data[:i+1], string(trimmed[i+1:])
	want, ok := strings.CutPrefix(trailer, "sha256 ")
	if !ok || len(want) != 64 {
		return Site{}, fmt.Errorf("%w: last line is not \"sha256 <hex>\"", ErrCorrupt)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != want {
		return Site{}, fmt.Errorf("%w: checksum mismatch (file damaged or edited)", ErrCorrupt)
	}
	var jsonPart bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), MaxExportSize)
	inJSON := false
	for sc.Scan() {
		line := sc.Bytes()
		if !inJSON && bytes.HasPrefix(line, []byte("#")) {
			continue
		}
		inJSON = true
		jsonPart.Write(line)
		jsonPart.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return Site{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	dec := json.NewDecoder(&jsonPart)
	dec.DisallowUnknownFields()
	var d siteDoc
	if err := dec.Decode(&d); err != nil {
		return Site{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return Site{}, fmt.Errorf("%w: data after the configuration", ErrCorrupt)
	}
	site := d.site()
	if err := Validate(&site); err != nil {
		return Site{}, fmt.Errorf("import: %w", err)
	}
	return site, nil
}

// Import reads an export file from r, checks and validates all of it, then
// replaces the whole configuration atomically (ReplaceSite). Nothing changes
// when any check fails.
func (s *Store) Import(actor, source string, r io.Reader) (Change, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxExportSize+1))
	if err != nil {
		return Change{}, fmt.Errorf("import %s: read: %w", source, err)
	}
	site, err := ParseExport(data)
	if err != nil {
		return Change{}, fmt.Errorf("import %s: %w", source, err)
	}
	return s.Apply(actor, ReplaceSite{Site: site, Source: source})
}
