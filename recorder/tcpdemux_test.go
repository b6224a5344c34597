package recorder

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// chunkConn is a net.Conn serving a byte stream in reads of at most chunk
// bytes, then io.EOF.
type chunkConn struct {
	net.Conn
	data   []byte
	chunk  int
	onRead func()
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.onRead != nil {
		c.onRead()
	}
	n := min(len(p), c.chunk, len(c.data))
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readEvents reads messages with gortsplib's own RTSP reader until it
// fails, describing each; taken frames are logged by the caller's handler
// into the same list, in stream order.
func readEvents(r io.Reader, log *[]string) {
	rc := conn.NewConn(struct {
		io.Reader
		io.Writer
	}{r, io.Discard})
	for range 100000 {
		what, err := rc.Read()
		if err != nil {
			return
		}
		switch m := what.(type) {
		case *base.InterleavedFrame:
			*log = append(*log, frameEvent(byte(m.Channel), m.Payload))
		case *base.Response:
			*log = append(*log, fmt.Sprintf("response %#v", *m))
		case *base.Request:
			u := "<nil>"
			if m.URL != nil {
				u = m.URL.String()
			}
			*log = append(*log, fmt.Sprintf("request %s %s %#v %x", m.Method, u, m.Header, m.Body))
		}
	}
}

// eventsDiff describes the first difference of two event lists, briefly.
func eventsDiff(got, want []string) string {
	short := func(s string) string {
		if len(s) > 160 {
			return s[:160] + "..."
		}
		return s
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("event %d of %d (want %d) differs:\n got %q\nwant %q", i, len(got), len(want), short(g), short(w))
		}
	}
	return ""
}

func frameEvent(ch byte, payload []byte) string {
	return fmt.Sprintf("frame %d %x", ch, payload)
}

// demuxEvents reads stream through a demuxConn taking channel fast (in
// chunks of chunk bytes): what gortsplib reads and what the fast path takes,
// in order.
func demuxEvents(stream []byte, chunk, fast int) ([]string, *demuxConn) {
	var log []string
	dc := newDemuxConn(&chunkConn{data: stream, chunk: chunk}, 64, 0)
	dc.keepalive = 0
	dc.setFast(fast, func(p []byte) { log = append(log, frameEvent(byte(fast), p)) })
	readEvents(dc, &log)
	return log, dc
}

func interleaved(ch byte, payload []byte) []byte {
	b := []byte{'$', ch, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(payload)))
	return append(b, payload...)
}

// demuxSeed is a stream as a camera sends it: replies, a request of its
// own, RTP and RTCP on two tracks, stray line ends, a frame larger than
// the starting buffer.
func demuxSeed() []byte {
	var b bytes.Buffer
	b.WriteString("RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678;timeout=60\r\nRTP-Info: url=rtsp://x/trackID=0;seq=1\r\n\r\n")
	rtp := append([]byte{0x80, 96, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4}, bytes.Repeat([]byte{0x65}, 1400)...)
	b.Write(interleaved(0, rtp))
	b.Write(interleaved(1, []byte{0x80, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
	b.Write(interleaved(2, []byte{0x80, 97, 0, 1, 0, 0, 0, 9, 5, 6, 7, 8, 0x21}))
	b.WriteString("\r\n")
	b.WriteString("RTSP/1.0 200 OK\r\nCSeq: 5\r\ncontent-length: 7\r\nContent-Type: text/parameters\r\n\r\nx: 1\r\n\r")
	b.Write(interleaved(0, rtp[:300]))
	b.WriteString("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
	b.Write(interleaved(0, append(rtp, bytes.Repeat([]byte{1}, 60000)...)))
	b.WriteString("GET_PARAMETER rtsp://h/p RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nabc")
	b.Write(interleaved(0, rtp[:20]))
	return b.Bytes()
}

// TestDemuxConnFraming: through a demuxConn gortsplib reads exactly the
// messages it reads from the raw stream, less the fast channel's frames,
// which the fast path took whole and in order; for any read size.
func TestDemuxConnFraming(t *testing.T) {
	stream := demuxSeed()
	var want []string
	readEvents(bytes.NewReader(stream), &want)
	if len(want) != 10 {
		t.Fatalf("seed stream has %d messages, want 10: %q", len(want), want)
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, 1500, 1 << 20} {
		got, dc := demuxEvents(stream, chunk, 0)
		if d := eventsDiff(got, want); d != "" {
			t.Fatalf("chunk %d: %s", chunk, d)
		}
		if !dc.active() {
			t.Errorf("chunk %d: fast path switched itself off on a well-formed stream", chunk)
		}
		if dc.framesTaken != 4 {
			t.Errorf("chunk %d: fast path took %d frames, want 4", chunk, dc.framesTaken)
		}
	}
}

// TestDemuxConnGivesUp: a stream gortsplib cannot parse makes the fast
// path hand over the rest as it came, so gortsplib sees and refuses the
// same bytes.
func TestDemuxConnGivesUp(t *testing.T) {
	rtp := []byte{0x80, 96, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4, 5}
	tests := map[string]string{
		"bad content length": "RTSP/1.0 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"huge body":          "RTSP/1.0 200 OK\r\nContent-Length: 999999\r\n\r\n",
		"header line no LF":  "RTSP/1.0 200 OK\r\nCSeq: 1\rX",
		"status line no LF":  "RTSP/1.0 200 OK\rX",
		"endless header":     "RTSP/1.0 200 OK\r\nX-Long: " + strings.Repeat("a", 70000),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			stream := append(interleaved(0, rtp), msg...)
			stream = append(stream, interleaved(0, rtp)...)
			var want []string
			readEvents(bytes.NewReader(stream), &want)
			got, dc := demuxEvents(stream, 100, 0)
			if d := eventsDiff(got, want); d != "" {
				t.Fatal(d)
			}
			if dc.active() {
				t.Error("fast path still active after a message gortsplib refuses")
			}
		})
	}
}

// TestDemuxConnKeepalive: while the fast path takes the RTP, gortsplib is
// shown an empty receiver report on the RTCP channel once per keepalive
// period, so its liveness check sees frames.
func TestDemuxConnKeepalive(t *testing.T) {
	rtp := []byte{0x80, 96, 0, 1, 0, 0, 0, 9, 0xca, 0xfe, 0xba, 0xbe, 5}
	var stream []byte
	for range 10 {
		stream = append(stream, interleaved(4, rtp)...)
	}
	now := time.Unix(1000, 0)
	dc := newDemuxConn(&chunkConn{data: stream, chunk: len(rtp) + 4, onRead: func() { now = now.Add(300 * time.Millisecond) }}, 64, 0)
	dc.now = func() time.Time { return now }
	taken := 0
	dc.setFast(4, func([]byte) { taken++ })
	var log []string
	readEvents(dc, &log)
	if taken != 10 {
		t.Fatalf("took %d frames, want 10", taken)
	}
	rr := frameEvent(5, []byte{0x80, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe})
	// Fills every 300 ms: keepalives at the first frame and then every
	// fourth (1.2 s later).
	want := []string{rr, rr, rr}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("gortsplib read %q, want %q", log, want)
	}
}

// FuzzDemuxConn: for any byte stream and read size, gortsplib's reader
// sees through demuxConn what it sees on the raw stream, less the frames
// the fast path took, in the same order; nothing panics.
func FuzzDemuxConn(f *testing.F) {
	f.Add(byte(7), byte(0), demuxSeed())
	f.Add(byte(0), byte(2), demuxSeed()[:500])
	f.Add(byte(3), byte(0), []byte("RTSP/1.0 200 OK\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\n$\x00\x00\x01x"))
	f.Add(byte(1), byte(0), []byte("GE\r\n * RTSP/1.0\r\n:\r\n\r\n$\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, chunk, fast byte, stream []byte) {
		var want []string
		readEvents(bytes.NewReader(stream), &want)
		got, _ := demuxEvents(stream, int(chunk)+1, int(fast%4))
		if d := eventsDiff(got, want); d != "" {
			t.Fatal(d)
		}
	})
}

// TestFastPathKeepsSessionAlive plays a camera that sends no RTCP over TCP
// for over twice the read timeout: the fast path takes every video frame
// (gortsplib sees none of the RTP), the keepalives keep gortsplib's
// liveness check from ending the session, and the units keep coming,
// each in a pooled buffer that can be given back.
func TestFastPathKeepsSessionAlive(t *testing.T) {
	sim, err := camsim.New(camsim.Options{Address: "127.0.0.1:0", DisableUDP: true, SenderReportPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if err := sim.AddPath("c", camsim.PathConfig{Video: camsim.H265, Bitrate: 2e6}); err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	units, pooled := 0, 0
	const readTimeout = 2 * time.Second
	cc, err := gortsplibConnector{}.connect(context.Background(), connectConfig{
		url: sim.URL("c"), transport: TransportTCP, readTimeout: readTimeout, userAgent: "test", now: time.Now,
		deliver: func(u unit) {
			mu.Lock()
			defer mu.Unlock()
			units++
			if u.buf != nil && u.pool != nil {
				pooled++
			}
			u.release()
		},
		decodeError: func(err error) { t.Errorf("decode error: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.close()
	select {
	case <-cc.done():
		t.Fatalf("session ended after less than %v: %v", 5*readTimeout/2, cc.err())
	case <-time.After(5 * readTimeout / 2):
	}
	dc := cc.(*gortsplibConn).demux.Load()
	if dc == nil || !dc.active() {
		t.Fatal("no active fast path on a TCP session")
	}
	mu.Lock()
	defer mu.Unlock()
	// 25 fps for 5 s, less the start before the first packets.
	if units < 80 || pooled != units {
		t.Errorf("%d units (%d in pooled buffers), want >= 80, all pooled", units, pooled)
	}
	if dc.framesTaken < uint64(units) {
		t.Errorf("fast path took %d RTP frames for %d units", dc.framesTaken, units)
	}
}
