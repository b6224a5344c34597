package api

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// cameraName is what the configuration accepts as a camera name.
var cameraName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

type rangeQuery struct {
	camera   string
	from, to time.Time
}

// parseRangeQuery reads camera, from and to. Times are RFC 3339, Unix
// seconds (with optional fraction), "now", or relative to now like "-10m".
func parseRangeQuery(v url.Values, now time.Time, maxRange time.Duration) (rangeQuery, error) {
	for k := range v {
		switch k {
		case "camera", "from", "to":
		default:
			return rangeQuery{}, fmt.Errorf("unknown query parameter %q (want camera, from, to)", k)
		}
		if len(v[k]) > 1 {
			return rangeQuery{}, fmt.Errorf("query parameter %q given %d times", k, len(v[k]))
		}
	}
	q := rangeQuery{camera: v.Get("camera")}
	if q.camera == "" {
		return q, errors.New("missing query parameter camera")
	}
	if !cameraName.MatchString(q.camera) {
		return q, fmt.Errorf("camera %q is not a valid camera name", q.camera)
	}
	var err error
	if q.from, err = parseTime(v.Get("from"), now); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	to := v.Get("to")
	if to == "" {
		to = "now"
	}
	if q.to, err = parseTime(to, now); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	if !q.from.Before(q.to) {
		return q, fmt.Errorf("from %s is not before to %s", q.from.Format(time.RFC3339), q.to.Format(time.RFC3339))
	}
	if q.to.Sub(q.from) > maxRange {
		return q, fmt.Errorf("range %v is longer than the maximum %v", q.to.Sub(q.from), maxRange)
	}
	return q, nil
}

func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, errors.New("missing time (RFC 3339, Unix seconds, now, or -10m)")
	case s == "now":
		return now, nil
	case s[0] == '-':
		d, err := time.ParseDuration(s[1:])
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("bad relative time %q (like -10m or -1h30m)", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("bad time %q (RFC 3339 like 2026-11-25T10:00:00Z, Unix seconds, now, or -10m)", s)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}
