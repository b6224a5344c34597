package recorder

// Tests of the seam's sender-report clock, read batching and buffer
// ownership (rtsp.go), against the camera simulator where they need a real
// gortsplib session.

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/nvrfw/nvr/recorder/camsim"
)

func TestNTPToTime(t *testing.T) {
	unix0 := uint64(2208988800) << 32
	tests := []struct {
		name string
		ntp  uint64
		want time.Time
	}{
		{"unix epoch", unix0, time.Unix(0, 0)},
		{"half a second is 2^31", unix0 | 1<<31, time.Unix(0, 500_000_000)},
		{"quarter second", unix0 | 1<<30, time.Unix(0, 250_000_000)},
		{"largest fraction rounds to the next second", unix0 | 0xffffffff, time.Unix(1, 0)},
		{"2026-11-25 12:00:00.1", (uint64(1795608000+2208988800) << 32) | 429496730, time.Unix(1795608000, 100_000_000)},
		{"era 1: seconds wrapped in 2036", 5 << 32, time.Unix(1<<32+5-2208988800, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ntpToTime(tt.ntp); !got.Equal(tt.want) {
				t.Errorf("ntpToTime(%#x) = %v, want %v", tt.ntp, got.UTC(), tt.want.UTC())
			}
		})
	}
}

func TestSenderClock(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	sr := &rtcp.SenderReport{SSRC: 7, NTPTime: (uint64(base.Unix()+2208988800) << 32) | 1<<31, RTPTime: 0xffffff00}
	srTime := base.Add(500 * time.Millisecond)
	tests := []struct {
		name   string
		report bool
		ssrc   uint32
		ts     uint32
		want   time.Time
	}{
		{"no report yet", false, 7, 0xffffff00, time.Time{}},
		{"at the report", true, 7, 0xffffff00, srTime},
		{"one second later, across the 32-bit wrap", true, 7, 90000 - 0x100, srTime.Add(time.Second)},
		{"40 ms earlier", true, 7, 0xffffff00 - 3600, srTime.Add(-40 * time.Millisecond)},
		{"another source's packet", true, 8, 0xffffff00, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &senderClock{rate: 90000}
			c.handleRTCP(&rtcp.ReceiverReport{SSRC: 7}) // ignored
			if tt.report {
				c.handleRTCP(sr)
			}
			if got := c.at(tt.ssrc, tt.ts); !got.Equal(tt.want) {
				t.Errorf("at(%d, %#x) = %v, want %v", tt.ssrc, tt.ts, got, tt.want)
			}
		})
	}
}

// startSeamSim serves one 4 Mbit/s H.264 path "c" on loopback (TCP only).
func startSeamSim(t *testing.T) *camsim.Simulator {
	t.Helper()
	sim, err := camsim.New(camsim.Options{Address: "127.0.0.1:0", DisableUDP: true, SenderReportPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	if err := sim.AddPath("c", camsim.PathConfig{Video: camsim.H264, Bitrate: 4e6}); err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return sim
}

// collectUnits plays path c with the production connector for d and
// returns the units delivered, with the CRC of each unit's bytes taken at
// delivery.
func collectUnits(t *testing.T, sim *camsim.Simulator, d time.Duration) ([]unit, []uint32) {
	t.Helper()
	var mu sync.Mutex
	var units []unit
	var sums []uint32
	conn, err := gortsplibConnector{}.connect(context.Background(), connectConfig{
		url: sim.URL("c"), readTimeout: 3 * time.Second, userAgent: "test", now: time.Now,
		deliver: func(u unit) {
			mu.Lock()
			defer mu.Unlock()
			units = append(units, u)
			sums = append(sums, unitCRC(u))
		},
		decodeError: func(err error) { t.Errorf("decode error: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	conn.close()
	mu.Lock()
	defer mu.Unlock()
	return units, sums
}

func unitCRC(u unit) uint32 {
	h := crc32.NewIEEE()
	for _, n := range u.nalus {
		h.Write(n)
	}
	h.Write(u.data)
	return h.Sum32()
}

// The camera's sender reports (standard NTP timestamps, as the simulator
// and real cameras send) place every unit at its capture time. gortsplib's
// own PacketNTP misread the fraction and put them up to 3.3 s off.
func TestSenderReportsGiveCaptureTime(t *testing.T) {
	sim := startSeamSim(t)
	start := time.Now()
	units, _ := collectUnits(t, sim, 1500*time.Millisecond)
	sent, err := sim.SentFrames("c", start.Add(-time.Second), time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	capture := map[uint32]time.Time{}
	for _, f := range sent {
		capture[f.RTPTime] = f.Time
	}
	var timed int
	for i, u := range units {
		c, ok := capture[u.ts]
		if !ok {
			t.Fatalf("unit %d: RTP time %d was not sent", i, u.ts)
		}
		if u.ntp.IsZero() {
			continue
		}
		timed++
		if d := u.ntp.Sub(c).Abs(); d > time.Millisecond {
			t.Errorf("unit %d: camera time %v is %v off its capture time %v", i, u.ntp.UTC(), d, c.UTC())
		}
	}
	if len(units) < 20 || timed < len(units)-2 {
		t.Errorf("%d units, %d of them with the camera's time; want >= 20, all but the first", len(units), timed)
	}
}

// Units keep their bytes: the seam hands gortsplib's buffers on without a
// copy, which is only right while gortsplib never reuses them.
func TestUnitsOwnTheirBytes(t *testing.T) {
	sim := startSeamSim(t)
	units, sums := collectUnits(t, sim, 1500*time.Millisecond)
	if len(units) < 20 {
		t.Fatalf("%d units, want >= 20", len(units))
	}
	for i, u := range units {
		if got := unitCRC(u); got != sums[i] {
			t.Fatalf("unit %d: bytes changed after delivery (gortsplib reused a buffer)", i)
		}
	}
}

// scriptedConn is a net.Conn whose reads return the scripted chunks (an
// error chunk returns the error), recording each read's buffer size.
type scriptedConn struct {
	net.Conn
	chunks []scriptedRead
	sizes  []int
}

type scriptedRead struct {
	data []byte
	err  error
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	r := c.chunks[0]
	c.chunks = c.chunks[1:]
	n := copy(p, r.data)
	if n < len(r.data) {
		panic("scripted chunk larger than the read buffer")
	}
	return n, r.err
}

func TestDemuxConnBatching(t *testing.T) {
	small := bytes.Repeat([]byte{1}, 100)
	big := bytes.Repeat([]byte{2}, 700)
	errBoom := errors.New("boom")
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name      string
		chunks    []scriptedRead
		work      time.Duration // time the reader spends per Read call
		want      []byte
		wantErr   error
		wantSleep []time.Duration
	}{
		// The clock starts on a tick of the 20 ms grid; every Read call
		// takes 5 ms, two calls drain a small read.
		{"after a small read the next waits for the next tick", []scriptedRead{{data: small}, {data: small}, {data: small}},
			5 * time.Millisecond, cat(small, small, small), io.EOF, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}},
		{"a slow reader is not made slower", []scriptedRead{{data: small}, {data: small}},
			15 * time.Millisecond, cat(small, small), io.EOF, nil},
		{"a read filling half the buffer is followed at once", []scriptedRead{{data: big}, {data: big}, {data: small}},
			5 * time.Millisecond, cat(big, big, small), io.EOF, []time.Duration{15 * time.Millisecond}},
		{"bytes read with an error come first", []scriptedRead{{data: small, err: errBoom}},
			5 * time.Millisecond, small, errBoom, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := &scriptedConn{chunks: tt.chunks}
			c := newDemuxConn(sc, 1024, 20*time.Millisecond)
			now := time.Unix(1000, 0)
			var slept []time.Duration
			c.now = func() time.Time { return now }
			c.sleep = func(d time.Duration) { slept = append(slept, d); now = now.Add(d) }
			var got []byte
			p := make([]byte, 64) // gortsplib's bufio reads less than a batch
			var err error
			for range 1000 {
				now = now.Add(tt.work)
				var n int
				n, err = c.Read(p)
				got = append(got, p[:n]...)
				if err != nil {
					break
				}
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("read %d bytes, want %d", len(got), len(tt.want))
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !equalDurations(slept, tt.wantSleep) {
				t.Errorf("slept %v, want %v", slept, tt.wantSleep)
			}
			for _, n := range sc.sizes {
				if n != 1024 {
					t.Errorf("socket read with a %d-byte buffer, want the whole batch buffer", n)
				}
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzSenderClock feeds sender reports with any NTP and RTP times (camera
// bytes) and checks the mapping: never a panic, the report's own RTP time
// maps to its NTP time, and one second of RTP ticks later maps one second
// later.
func FuzzSenderClock(f *testing.F) {
	f.Add(uint64(0xeb2f1b8a80000000), uint32(0xffffff00), uint32(7), uint32(1000))
	f.Add(uint64(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint64(0xffffffffffffffff), uint32(0x7fffffff), uint32(1), uint32(0x80000000))
	f.Fuzz(func(t *testing.T, ntp uint64, rtpTime, ssrc, ts uint32) {
		c := &senderClock{rate: 90000}
		c.handleRTCP(&rtcp.SenderReport{SSRC: ssrc, NTPTime: ntp, RTPTime: rtpTime})
		at := c.at(ssrc, rtpTime)
		if want := ntpToTime(ntp); !at.Equal(want) {
			t.Fatalf("report's own RTP time maps to %v, want %v", at, want)
		}
		if got := c.at(ssrc, rtpTime+90000).Sub(at); got != time.Second {
			t.Fatalf("90000 ticks later maps %v later, want 1s", got)
		}
		_ = c.at(ssrc+1, ts)
		_ = c.at(ssrc, ts)
	})
}
