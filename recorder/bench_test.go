package recorder_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// BenchmarkRecord records 8 simulated 4 Mbit/s H.264+AAC cameras into a real
// store for 3 s per iteration and reports throughput and the process's CPU
// (simulator, recorder and store together: they share the process).
func BenchmarkRecord(b *testing.B) {
	const cameras = 8
	const rate = 4e6
	paths := map[string]camsim.PathConfig{}
	for i := range cameras {
		paths[fmt.Sprintf("c%d", i)] = camsim.PathConfig{Video: camsim.H264, Audio: camsim.AAC, Bitrate: rate}
	}
	for range b.N {
		func() {
			sim, err := camsim.New(camsim.Options{Address: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Close()
			for name, cfg := range paths {
				if err := sim.AddPath(name, cfg); err != nil {
					b.Fatal(err)
				}
			}
			if err := sim.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			st := openStoreB(b)
			m, err := recorder.NewManager(recorder.ManagerOptions{
				Writer: func(name string) (recorder.FrameWriter, error) { return st.Stream(name) },
			})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			for name := range paths {
				if err := m.Add(recorder.Camera{Name: name, URL: sim.URL(name)}); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(1500 * time.Millisecond) // connect and reach a keyframe
			f0, c0, t0 := recordedFrames(m), cpuTime(), time.Now()
			time.Sleep(3 * time.Second)
			f1, c1, el := recordedFrames(m), cpuTime(), time.Since(t0)
			var dropped uint64
			for _, s := range m.Statuses() {
				dropped += s.FramesDropped
			}
			b.ReportMetric(float64(f1-f0)/el.Seconds(), "frames/s")
			b.ReportMetric(float64(cameras)*rate/8/1e6, "MB/s_offered")
			b.ReportMetric(100*(c1-c0).Seconds()/el.Seconds(), "%cpu_total")
			b.ReportMetric(float64(dropped), "dropped")
		}()
	}
}

func recordedFrames(m *recorder.Manager) uint64 {
	var n uint64
	for _, s := range m.Statuses() {
		n += s.FramesRecorded
	}
	return n
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
