package recorder

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Transport is how a camera's RTP packets travel.
type Transport string

// Transports. The empty Transport means TransportTCP.
const (
	// TransportTCP interleaves RTP in the RTSP connection: one TCP
	// connection, no firewall trouble, no loss. The default.
	TransportTCP Transport = "tcp"
	// TransportUDP receives RTP on UDP ports the client chooses.
	TransportUDP Transport = "udp"
	// TransportMulticast joins the multicast group the camera announces.
	TransportMulticast Transport = "multicast"
)

// ErrInvalidCamera: a Camera's name, URL or transport is not usable.
var ErrInvalidCamera = errors.New("invalid camera")

// Camera is one camera stream to record.
type Camera struct {
	// Name is the store's stream name ("cam1"): letters, digits, '-', '_'
	// and '.', at most 64 bytes. Required.
	Name string
	// URL is rtsp://[user:pass@]host[:port]/path (or rtsps://). Basic and
	// digest authentication are negotiated with the credentials it holds.
	// Required.
	URL string
	// Transport is how RTP travels; "" means TransportTCP.
	Transport Transport
}

// Validate reports whether the camera can be recorded, wrapping
// ErrInvalidCamera.
func (c Camera) Validate() error {
	if c.Name == "" || len(c.Name) > 64 || strings.IndexFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return fmt.Errorf("%w: name %q: want 1-64 letters, digits, '-', '_' or '.'", ErrInvalidCamera, c.Name)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("%w: %s: URL: %w", ErrInvalidCamera, c.Name, redactErr(err))
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("%w: %s: URL scheme %q: want rtsp or rtsps", ErrInvalidCamera, c.Name, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: %s: URL has no host", ErrInvalidCamera, c.Name)
	}
	switch c.Transport {
	case "", TransportTCP, TransportUDP, TransportMulticast:
	default:
		return fmt.Errorf("%w: %s: transport %q: want tcp, udp or multicast", ErrInvalidCamera, c.Name, c.Transport)
	}
	return nil
}

// RedactedURL returns the URL with its password replaced by "xxxxx", for
// logs and status.
func (c Camera) RedactedURL() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (c Camera) transport() Transport {
	if c.Transport == "" {
		return TransportTCP
	}
	return c.Transport
}

// redactErr drops the text of URL parse errors, which quote the URL and so
// its password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
