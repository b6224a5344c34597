package pairing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// ServerName is the DNS name every pair certificate carries besides its
// node ID; TLS clients verify it, so any member of the pair is accepted.
const ServerName = "pair.nvr.invalid"

// KeySize is the length of the heartbeat HMAC key.
const KeySize = 32

// BundleFile is the file name Save writes in the config directory.
const BundleFile = "pair-bundle.pem"

// ErrNoBundle is returned by Load when the node has not been paired.
var ErrNoBundle = errors.New("pairing: node not paired (no bundle)")

// Bundle is one node's share of a pairing.
type Bundle struct {
	NodeID  string
	CACert  *x509.Certificate
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	PairKey []byte // heartbeat HMAC-SHA256 key, KeySize bytes
}

// Pair makes a new CA, a certificate per node ID and a pair key, and returns
// one bundle per node in the order of ids. Validity is 20 years: appliances
// have no reliable clock at first boot.
func Pair(ids []string) ([]*Bundle, error) {
	if len(ids) == 0 {
		return nil, errors.New("pairing: no node IDs")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			return nil, fmt.Errorf("pairing: node ID %q empty or repeated", id)
		}
		seen[id] = true
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pairing: CA key: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "nvr pair CA"},
		NotBefore:             now,
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pairing: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pairing: CA certificate: %w", err)
	}
	pk := make([]byte, KeySize)
	if _, err := rand.Read(pk); err != nil {
		return nil, fmt.Errorf("pairing: pair key: %w", err)
	}
	out := make([]*Bundle, 0, len(ids))
	for _, id := range ids {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pairing: key for %s: %w", id, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: id},
			DNSNames:     []string{id, ServerName},
			NotBefore:    now,
			NotAfter:     now.AddDate(20, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("pairing: certificate for %s: %w", id, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("pairing: certificate for %s: %w", id, err)
		}
		out = append(out, &Bundle{NodeID: id, CACert: ca, Cert: cert, Key: key, PairKey: append([]byte(nil), pk...)})
	}
	return out, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// Marshal encodes the bundle as PEM blocks: NVR PAIR KEY (hex in a header),
// CERTIFICATE (CA), CERTIFICATE (node), EC PRIVATE KEY.
func (b *Bundle) Marshal() ([]byte, error) {
	keyDER, err := x509.MarshalECPrivateKey(b.Key)
	if err != nil {
		return nil, fmt.Errorf("pairing: marshal key: %w", err)
	}
	var buf bytes.Buffer
	blocks := []*pem.Block{
		{Type: "NVR PAIR", Headers: map[string]string{"Node": b.NodeID, "Pair-Key": hex.EncodeToString(b.PairKey)}},
		{Type: "CERTIFICATE", Headers: map[string]string{"Role": "ca"}, Bytes: b.CACert.Raw},
		{Type: "CERTIFICATE", Headers: map[string]string{"Role": "node"}, Bytes: b.Cert.Raw},
		{Type: "EC PRIVATE KEY", Bytes: keyDER},
	}
	for _, blk := range blocks {
		if err := pem.Encode(&buf, blk); err != nil {
			return nil, fmt.Errorf("pairing: encode: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// ParseBundle decodes and checks a bundle made by Marshal: the node
// certificate must be signed by the CA, match the key and name the node.
func ParseBundle(data []byte) (*Bundle, error) {
	b := &Bundle{}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "NVR PAIR":
			b.NodeID = blk.Headers["Node"]
			k, err := hex.DecodeString(blk.Headers["Pair-Key"])
			if err != nil || len(k) != KeySize {
				return nil, errors.New("pairing: bundle: bad pair key")
			}
			b.PairKey = k
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pairing: bundle certificate: %w", err)
			}
			certs = append(certs, c)
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pairing: bundle key: %w", err)
			}
			b.Key = k
		}
	}
	if len(certs) != 2 || b.Key == nil || b.PairKey == nil || b.NodeID == "" {
		return nil, errors.New("pairing: bundle incomplete (want pair header, CA and node certificates, key)")
	}
	b.CACert, b.Cert = certs[0], certs[1]
	if !b.CACert.IsCA {
		return nil, errors.New("pairing: bundle: first certificate is not a CA")
	}
	if err := b.Cert.CheckSignatureFrom(b.CACert); err != nil {
		return nil, fmt.Errorf("pairing: bundle: node certificate not signed by the CA: %w", err)
	}
	if b.Cert.Subject.CommonName != b.NodeID {
		return nil, fmt.Errorf("pairing: bundle: certificate names %q, bundle names %q", b.Cert.Subject.CommonName, b.NodeID)
	}
	pub, ok := b.Cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&b.Key.PublicKey) {
		return nil, errors.New("pairing: bundle: key does not match the certificate")
	}
	return b, nil
}

// Save writes the bundle to dir/BundleFile (mode 0600) crash-safely: temp
// file, fsync, rename, fsync of the directory.
func (b *Bundle) Save(dir string) error {
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pairing: save: %w", err)
	}
	tmp := filepath.Join(dir, BundleFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pairing: save: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pairing: save: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pairing: save: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pairing: save: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, BundleFile)); err != nil {
		return fmt.Errorf("pairing: save: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pairing: save: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pairing: save: sync dir: %w", err)
	}
	return nil
}

// Load reads dir/BundleFile; ErrNoBundle when it does not exist.
func Load(dir string) (*Bundle, error) {
	data, err := os.ReadFile(filepath.Join(dir, BundleFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoBundle
	}
	if err != nil {
		return nil, fmt.Errorf("pairing: load: %w", err)
	}
	return ParseBundle(data)
}

// ServerConfig is the TLS 1.3 configuration for accepting pair connections:
// the client must present a certificate signed by the pair's CA.
func (b *Bundle) ServerConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(b.CACert)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.tlsCert()},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// ClientConfig is the TLS 1.3 configuration for dialing a pair member.
func (b *Bundle) ClientConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(b.CACert)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.tlsCert()},
		RootCAs:      pool,
		ServerName:   ServerName,
	}
}

func (b *Bundle) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{b.Cert.Raw}, PrivateKey: b.Key, Leaf: b.Cert}
}

// PeerID returns the node ID of the verified peer of a TLS connection state.
func PeerID(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("pairing: peer sent no certificate")
	}
	return cs.PeerCertificates[0].Subject.CommonName, nil
}
