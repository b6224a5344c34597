package recorder

import (
	"math"
	"testing"
	"time"
)

var testClockCfg = clockConfig{jump: 10 * time.Second, slew: 0.01, maxSkew: 5 * time.Second}

func TestTrackClock(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const fps = 25
	const tick = 90000 / fps // RTP ticks per frame
	frame := time.Second / fps
	real := func(i int) time.Time { return t0.Add(time.Duration(i) * frame) }
	tests := []struct {
		name  string
		n     int
		ts    func(i int) uint32    // the camera's RTP timestamp of frame i
		ref   func(i int) time.Time // reference (arrival or NTP) of frame i
		want  func(i int) time.Time // expected wall time of frame i
		tol   time.Duration         // allowed |got-want|
		jumps []int                 // frames at which a jump is reported
	}{
		{
			name: "steady with arrival jitter",
			n:    1000,
			ts:   func(i int) uint32 { return 1234 + uint32(i*tick) },
			ref: func(i int) time.Time {
				return real(i).Add(time.Duration((i*7919)%15) * time.Millisecond) // 0..14 ms late
			},
			want: real,
			tol:  20 * time.Millisecond,
		},
		{
			name: "32-bit wraparound is a small step, not 13 hours",
			n:    200,
			ts:   func(i int) uint32 { return math.MaxUint32 - 50*tick + uint32(i*tick) },
			ref:  real,
			want: real,
			tol:  time.Millisecond,
		},
		{
			name: "forward jump of an hour re-anchors",
			n:    100,
			ts: func(i int) uint32 {
				if i >= 50 {
					return uint32(i*tick + 3600*90000)
				}
				return uint32(i * tick)
			},
			ref:   real,
			want:  real,
			tol:   time.Millisecond,
			jumps: []int{50},
		},
		{
			name: "backward jump of 5 s re-anchors",
			n:    100,
			ts: func(i int) uint32 {
				if i >= 50 {
					return uint32(10*90000 + i*tick - 5*90000)
				}
				return uint32(10*90000 + i*tick)
			},
			ref:   real,
			want:  real,
			tol:   time.Millisecond,
			jumps: []int{50},
		},
		{
			name: "small step back is absorbed without a jump",
			n:    100,
			ts: func(i int) uint32 {
				if i >= 50 {
					return uint32(10*90000 + i*tick - 9000)
				}
				return uint32(10*90000 + i*tick)
			},
			ref:  real,
			want: real,
			tol:  time.Millisecond,
		},
		{
			name: "camera clock 0.5% fast is slewed to wall time",
			n:    25 * 600,
			ts:   func(i int) uint32 { return uint32(float64(i*tick) * 1.005) },
			ref:  real,
			want: real,
			tol:  60 * time.Millisecond,
		},
		{
			name: "wall clock stepped an hour forward re-anchors",
			n:    100,
			ts:   func(i int) uint32 { return uint32(i * tick) },
			ref: func(i int) time.Time {
				if i >= 60 {
					return real(i).Add(time.Hour)
				}
				return real(i)
			},
			want: func(i int) time.Time {
				if i >= 60 {
					return real(i).Add(time.Hour)
				}
				return real(i)
			},
			tol:   time.Millisecond,
			jumps: []int{60},
		},
		{
			name: "reference 3 s off is slewed, not jumped",
			n:    25 * 400,
			ts:   func(i int) uint32 { return uint32(i * tick) },
			ref: func(i int) time.Time {
				if i >= 1 {
					return real(i).Add(3 * time.Second)
				}
				return real(i)
			},
			want: func(i int) time.Time {
				// slews at 1%: 10 ms per second of media until caught up.
				lag := 3*time.Second - time.Duration(i)*frame/100
				return real(i).Add(3 * time.Second).Add(-max(lag, 0))
			},
			tol: 5 * time.Millisecond,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTrackClock(90000, testClockCfg)
			jumps := map[int]bool{}
			for _, j := range tc.jumps {
				jumps[j] = true
			}
			var prev time.Time
			for i := range tc.n {
				ext := c.unwrap(tc.ts(i))
				p := c.place(ext, ext, tc.ref(i))
				if p.jumped != jumps[i] {
					t.Fatalf("frame %d: jumped = %v, want %v", i, p.jumped, jumps[i])
				}
				if i > 0 && p.pts.Before(prev) {
					t.Fatalf("frame %d: time %v before previous %v", i, p.pts, prev)
				}
				prev = p.pts
				if d := p.pts.Sub(tc.want(i)); d > tc.tol || d < -tc.tol {
					t.Fatalf("frame %d: time off by %v (tolerance %v)", i, d, tc.tol)
				}
			}
		})
	}
}

func TestTrackClockFloor(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	floor := t0.Add(1500 * time.Millisecond) // the previous connection's last frame
	tests := []struct {
		name     string
		jumpAt   int // frame whose RTP time jumps back 5 s (0: none)
		wantJump bool
	}{
		{"new connection anchored before the last frame", 0, false},
		{"jump back re-anchors no earlier than the last frame", 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTrackClock(90000, testClockCfg)
			c.setFloor(floor)
			var prev time.Time
			jumped := false
			for i := range 400 {
				ts := uint32(i * 3600)
				if tc.jumpAt > 0 && i >= tc.jumpAt {
					ts -= 5 * 90000
				}
				ref := t0.Add(time.Duration(i) * 40 * time.Millisecond)
				ext := c.unwrap(ts)
				p := c.place(ext, ext, ref)
				jumped = jumped || p.jumped
				if p.pts.Before(floor) {
					t.Fatalf("frame %d at %v, before the floor %v", i, p.pts, floor)
				}
				if i > 0 && !p.pts.After(prev) {
					t.Fatalf("frame %d at %v does not progress from %v", i, p.pts, prev)
				}
				prev = p.pts
			}
			if jumped != tc.wantJump {
				t.Fatalf("jumped = %v", jumped)
			}
		})
	}
}

func TestTrackClockDTSOffset(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := newTrackClock(90000, testClockCfg)
	// I P B B in decode order, PTS and DTS ticks as a DTS extractor gives.
	type s struct{ pts, dts int64 }
	seq := []s{{3600, 0}, {14400, 3600}, {7200, 7200}, {10800, 10800}}
	var prevDTS time.Time
	for i, x := range seq {
		p := c.place(x.pts, x.dts, t0.Add(time.Duration(x.dts)*time.Second/90000))
		if p.dtsOffset != time.Duration(x.pts-x.dts)*time.Second/90000 {
			t.Fatalf("frame %d: dtsOffset %v", i, p.dtsOffset)
		}
		dts := p.pts.Add(-p.dtsOffset)
		if dts.Before(prevDTS) {
			t.Fatalf("frame %d: DTS went backwards", i)
		}
		prevDTS = dts
		if p.jumped {
			t.Fatalf("frame %d: unexpected jump", i)
		}
	}
}

func TestReference(t *testing.T) {
	recv := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ntp  time.Time
		want time.Time
	}{
		{"no sender report", time.Time{}, recv},
		{"camera NTP close to ours", recv.Add(-300 * time.Millisecond), recv.Add(-300 * time.Millisecond)},
		{"camera clock an hour off", recv.Add(-time.Hour), recv},
		{"camera clock in the future", recv.Add(6 * time.Second), recv},
	}
	for _, tc := range tests {
		if got := reference(tc.ntp, recv, 5*time.Second); !got.Equal(tc.want) {
			t.Errorf("%s: reference = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name   string
		jitter float64
		rand   float64
		want   []time.Duration
	}{
		{"doubling to the cap", 0, 0, []time.Duration{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000}},
		{"jitter low", 0.2, 0, []time.Duration{400, 800, 1600}},
		{"jitter high", 0.2, 0.999999999, []time.Duration{600, 1200, 2400}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := backoff{min: 500 * time.Millisecond, max: 30 * time.Second, jitter: tc.jitter, rand: func() float64 { return tc.rand }}
			for i, w := range tc.want {
				got := b.next().Round(time.Millisecond)
				if got != w*time.Millisecond {
					t.Fatalf("step %d: %v, want %v", i, got, w*time.Millisecond)
				}
			}
			b.reset()
			if got := b.next().Round(time.Millisecond); got != tc.want[0]*time.Millisecond {
				t.Fatalf("after reset: %v", got)
			}
		})
	}
}
