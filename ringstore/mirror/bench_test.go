package mirror

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// BenchmarkMirror measures mirroring throughput on loopback: 64 MiB of
// committed footage (25 fps video of 64 KiB frames) shipped from a primary
// store to an empty standby store, both on disk in temp dirs, until the
// standby acknowledged all of it. It reports MB/s and the CPU time (user +
// system, both ends together, they share this process) per GB shipped.
func BenchmarkMirror(b *testing.B) {
	const total = 64 << 20
	const frameSize = 64 << 10
	keys := newPair(b)
	var bytes int64
	var elapsed, cpu time.Duration
	for range b.N {
		b.StopTimer()
		a, _ := openStore(b, 256<<20, 16<<20)
		s, _ := openStore(b, 256<<20, 16<<20)
		w, err := a.Stream("cam1")
		if err != nil {
			b.Fatal(err)
		}
		if err := w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000}}); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, frameSize)
		for i := range data {
			data[i] = byte(i * 7)
		}
		for i := range total / frameSize {
			f := ringstore.Frame{Time: t0.Add(time.Duration(i) * 40 * time.Millisecond), Key: i%25 == 0, Data: data}
			for {
				_, err := w.Append(f)
				if !errors.Is(err, ringstore.ErrBackpressure) {
					if err != nil {
						b.Fatal(err)
					}
					break
				}
				a.Flush(context.Background())
			}
		}
		if err := a.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		want := a.NewestByStream()["cam1"]
		start, ru0 := time.Now(), rusage(b)
		b.StartTimer()
		recv := startReceiver(b, ReceiverOptions{Store: s, NodeID: "b", TLS: keys.b.ServerConfig()})
		send := startSender(b, SenderOptions{Store: a, NodeID: "a", TLS: keys.a.ClientConfig(), Addr: recv.Addr, Epoch: epochFn(1)})
		deadline := time.Now().Add(time.Minute)
		for !send.s.Status().AckedNewest.Equal(want) {
			if time.Now().After(deadline) {
				b.Fatalf("not mirrored after a minute: %+v", send.s.Status())
			}
			time.Sleep(2 * time.Millisecond)
		}
		b.StopTimer()
		elapsed += time.Since(start)
		cpu += rusage(b) - ru0
		bytes += int64(send.s.Status().Bytes)
		send.stop()
		recv.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(bytes)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(cpu.Seconds()/(float64(bytes)/1e9), "cpu-s/GB")
}

func rusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
