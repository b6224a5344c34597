package ringstore

import (
	"sync"
	"time"
)

// retention holds the per-stream maximum ages set with SetRetention.
type retention struct {
	mu     sync.RWMutex
	maxAge map[string]time.Duration
}

// SetRetention sets the maximum age of a stream's footage (0 removes the
// limit). It applies at once and to footage already recorded: from then on
// Frames, Spans and Streams never return footage older than now minus maxAge
// (a read may still begin at the keyframe just before that limit, so at most
// one GOP older), and Spans reports it as a gap with cause GapEvicted. The
// bytes stay in their slot until the ring recycles it; a whole-volume limit
// (Options.MaxAge) frees slots instead. The limit is configuration, not
// state: it is not stored, and the caller sets it again after Open.
func (s *Store) SetRetention(stream string, maxAge time.Duration) {
	s.ret.mu.Lock()
	defer s.ret.mu.Unlock()
	if maxAge <= 0 {
		delete(s.ret.maxAge, stream)
		return
	}
	if s.ret.maxAge == nil {
		s.ret.maxAge = map[string]time.Duration{}
	}
	s.ret.maxAge[stream] = maxAge
}

// retentionFloor returns the oldest footage time of stream that may be
// returned (unix ns), or 0 when the stream has no limit.
func (s *Store) retentionFloor(stream string) int64 {
	s.ret.mu.RLock()
	d, ok := s.ret.maxAge[stream]
	s.ret.mu.RUnlock()
	if !ok {
		return 0
	}
	return s.now().Add(-d).UnixNano()
}

// spansWithFloor applies stream's retention floor to a Spans query: the part
// of [from, to) before the floor is one evicted gap.
func (s *Store) spansWithFloor(stream string, from, to time.Time) (bool, []Span, []Gap, error) {
	fl := s.retentionFloor(stream)
	if fl == 0 || fl <= from.UnixNano() {
		return false, nil, nil, nil
	}
	cut := time.Unix(0, fl).In(from.Location())
	if !cut.Before(to) {
		return true, nil, []Gap{{Start: from, End: to, Cause: GapEvicted}}, nil
	}
	spans, gaps, err := s.spansFrom(stream, cut, to)
	if len(gaps) > 0 && gaps[0].Cause == GapEvicted && !gaps[0].Start.After(cut) {
		gaps[0].Start = from
	} else {
		gaps = append([]Gap{{Start: from, End: cut, Cause: GapEvicted}}, gaps...)
	}
	return true, spans, gaps, err
}
