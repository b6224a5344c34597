package recorder

import "time"

// backoff yields capped, jittered, exponentially growing delays: min,
// 2*min, 4*min ... up to max, each multiplied by a random factor in
// [1-jitter, 1+jitter]. It is not safe for concurrent use.
type backoff struct {
	min, max time.Duration
	jitter   float64
	rand     func() float64 // uniform in [0, 1)
	n        int
}

// next returns the delay before the next attempt and advances.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if b.n < 64 {
		b.n++
	}
	if b.jitter > 0 && b.rand != nil {
		f := 1 + b.jitter*(2*b.rand()-1)
		d = time.Duration(float64(d) * f)
	}
	return d
}

// reset starts the sequence again at min (after a healthy session).
func (b *backoff) reset() { b.n = 0 }
