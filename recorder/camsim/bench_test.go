package camsim

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawReader plays a path over RTSP/TCP with hand-written requests and
// discards the interleaved stream: a client far cheaper than the simulator,
// so the benchmark measures the simulator.
func rawReader(addr, path string, tracks int, got *atomic.Int64) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	base := "rtsp://" + addr + "/" + path
	session := ""
	do := func(cseq int, method, url, extra string) error {
		req := fmt.Sprintf("%s %s RTSP/1.0\r\nCSeq: %d\r\n%s\r\n", method, url, cseq, extra)
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		tp := textproto.NewReader(br)
		status, err := tp.ReadLine()
		if err != nil {
			return err
		}
		if !strings.Contains(status, " 200 ") {
			return fmt.Errorf("%s: %s", method, status)
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return err
		}
		if s := h.Get("Session"); s != "" {
			session, _, _ = strings.Cut(s, ";")
		}
		n, _ := strconv.Atoi(h.Get("Content-Length"))
		_, err = io.CopyN(io.Discard, br, int64(n))
		return err
	}
	steps := []func() error{func() error { return do(1, "DESCRIBE", base, "Accept: application/sdp\r\n") }}
	for i := range tracks {
		steps = append(steps, func() error {
			s := ""
			if session != "" {
				s = "Session: " + session + "\r\n"
			}
			return do(2+i, "SETUP", base+"/trackID="+strconv.Itoa(i),
				fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d\r\n%s", 2*i, 2*i+1, s))
		})
	}
	steps = append(steps, func() error { return do(9, "PLAY", base+"/", "Session: "+session+"\r\n") })
	for _, step := range steps {
		if err := step(); err != nil {
			c.Close()
			return nil, err
		}
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := br.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return c, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHundredCameras serves 100 paths, each played by one cheap TCP
// reader, and reports the process's CPU use (the simulator dominates it) per
// wall second, in percent of one core. Run with -benchtime=1x.
func BenchmarkHundredCameras(b *testing.B) {
	for _, tt := range []struct {
		name string
		cfg  PathConfig
	}{
		{"h264-own", PathConfig{}},
		{"h264-aac-4M", PathConfig{Audio: AAC, Bitrate: 4_000_000}},
		{"h265-pcmu-2M", PathConfig{Video: H265, Audio: PCMU, Bitrate: 2_000_000}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			const cameras = 100
			s, err := New(Options{Address: "127.0.0.1:0", DisableUDP: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for i := range cameras {
				if err := s.AddPath(fmt.Sprintf("cam%03d", i), tt.cfg); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			tracks := 1
			if tt.cfg.Audio != "" {
				tracks = 2
			}
			var got atomic.Int64
			var conns []net.Conn
			var mu sync.Mutex
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range cameras {
				c, err := rawReader(s.Addr(), fmt.Sprintf("cam%03d", i), tracks, &got)
				if err != nil {
					b.Fatal(err)
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			time.Sleep(500 * time.Millisecond) // settle
			b.ResetTimer()
			sent := func() (frames, bytes uint64) {
				for _, n := range s.Paths() {
					st, _ := s.Stats(n)
					frames += st.Frames
					bytes += st.Bytes
				}
				return frames, bytes
			}
			for range b.N {
				f0, sb0 := sent()
				cpu0, bytes0, t0 := cpuTime(), got.Load(), time.Now()
				time.Sleep(3 * time.Second)
				wall := time.Since(t0)
				cpu, recv := cpuTime()-cpu0, got.Load()-bytes0
				f1, sb1 := sent()
				b.ReportMetric(100*float64(cpu)/float64(wall), "cpu%")
				b.ReportMetric(float64(recv)*8/wall.Seconds()/1e6, "recv-Mbit/s")
				b.ReportMetric(float64(sb1-sb0)*8/wall.Seconds()/1e6, "sent-Mbit/s")
				b.ReportMetric(float64(f1-f0)/wall.Seconds()/cameras, "fps/camera")
			}
			b.StopTimer()
			closeStart := time.Now()
			s.Close() // with the readers still connected
			b.ReportMetric(time.Since(closeStart).Seconds(), "close-s")
		})
	}
}
