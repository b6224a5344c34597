package ringstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// benchDir returns a temp dir on a real disk (not tmpfs), as the benchmarks
// measure the disk.
func benchDir(b *testing.B) string {
	b.Helper()
	for _, base := range []string{os.TempDir(), "/var/tmp"} {
		var st unix.Statfs_t
		if err := unix.Statfs(base, &st); err != nil || st.Type == unix.TMPFS_MAGIC {
			continue
		}
		dir, err := os.MkdirTemp(base, "ringstore-bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	b.Skip("no temp directory on a real disk (all tmpfs)")
	return ""
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkAppend200Streams feeds 200 streams x 8 Mbit/s (25 fps, GOP 1 s)
// as fast as the store takes them, one commit tick per simulated second,
// then writes the same bytes raw (1 MiB writes, one fdatasync per 200 MiB)
// to compare. NVR_BENCH_SECONDS sets the simulated seconds (default 8).
func BenchmarkAppend200Streams(b *testing.B) {
	const (
		streams   = 200
		perSecond = 1_000_000 // 8 Mbit/s
		fps       = 25
	)
	seconds := envInt("NVR_BENCH_SECONDS", 8)
	dir := benchDir(b)
	total := int64(seconds) * streams * perSecond
	// Slots of 1 GiB, as Format picks for the multi-TB volumes of the
	// design target (Size/64 clamped to 1 GiB), with room to spare.
	const slot = 1 << 30
	size := (total/slot + 2) * slot
	ctx := context.Background()
	// Frame payloads: a keyframe of 1/5 of the second, the rest equal.
	key := make([]byte, perSecond/5)
	inter := make([]byte, (perSecond-len(key))/(fps-1))
	for i := range key {
		key[i] = byte(i)
	}
	for i := range inter {
		inter[i] = byte(i * 7)
	}
	for n := 0; n < b.N; n++ {
		vdir := filepath.Join(dir, fmt.Sprintf("vol%d", n))
		if _, err := Format(ctx, vdir, FormatOptions{Size: size, SlotSize: slot}); err != nil {
			b.Fatal(err)
		}
		s, err := Open(ctx, vdir, Options{CommitInterval: time.Hour, MaxPendingBytes: 4 * perSecond})
		if err != nil {
			b.Fatal(err)
		}
		ws := make([]*StreamWriter, streams)
		for i := range ws {
			ws[i], _ = s.Stream(fmt.Sprintf("cam%03d", i))
			ws[i].SetTracks(h264Tracks(byte(i)))
		}
		base := time.Now().Add(-time.Hour)
		cpu0, t0 := cpuSeconds(), time.Now()
		var prev uint64
		var written int64
		for sec := 0; sec < seconds; sec++ {
			var last uint64
			for _, w := range ws {
				for f := 0; f < fps; f++ {
					data := inter
					if f == 0 {
						data = key
					}
					at := base.Add(time.Duration(sec)*time.Second + time.Duration(f)*time.Second/fps)
					seq, err := w.Append(Frame{Time: at, Key: f == 0, Data: data})
					if err != nil {
						b.Fatalf("append: %v", err)
					}
					last = seq
					written += int64(len(data))
				}
			}
			// The previous tick must be done before this one starts;
			// appending this second overlapped with its write.
			if err := s.WaitDurable(ctx, prev); err != nil {
				b.Fatal(err)
			}
			s.kick <- struct{}{}
			prev = last
		}
		if err := s.WaitDurable(ctx, prev); err != nil {
			b.Fatal(err)
		}
		storeDur, storeCPU := time.Since(t0), cpuSeconds()-cpu0
		st := s.Stats()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		rawDur := rawWrite(b, filepath.Join(dir, fmt.Sprintf("raw%d", n)), written)
		storeMBs := float64(written) / 1e6 / storeDur.Seconds()
		rawMBs := float64(written) / 1e6 / rawDur.Seconds()
		b.ReportMetric(storeMBs, "store_MB/s")
		b.ReportMetric(rawMBs, "raw_MB/s")
		b.ReportMetric(100*storeMBs/rawMBs, "ratio_%")
		b.ReportMetric(storeCPU/(float64(written)/1e9), "cpu_s/GB")
		b.ReportMetric(st.CommitLatencyP99.Seconds(), "commit_p99_s")
		b.Logf("%d simulated s, %d MB: store %.0f MB/s (%v), raw %.0f MB/s (%v), commit p99 %v",
			seconds, written/1e6, storeMBs, storeDur.Round(time.Millisecond), rawMBs, rawDur.Round(time.Millisecond), st.CommitLatencyP99)
		os.RemoveAll(vdir)
	}
}

// rawWrite writes n bytes with 1 MiB WriteAt calls into a preallocated file,
// fdatasync after every 200 MiB, and returns the time taken.
func rawWrite(b *testing.B, p string, n int64) time.Duration {
	b.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(p)
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	buf := bytes.Repeat([]byte{0x5a}, 1<<20)
	t0 := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), n-off)], off); err != nil {
			b.Fatal(err)
		}
		if (off/int64(len(buf)))%200 == 199 {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// bulkIndex adds streams x perStream synthetic keyframe entries (an archive
// far in the past) to the index in large transactions. The entries point
// into slot 0 and are never read; they give Open a big index to cope with.
func bulkIndex(db *bolt.DB, streams, perStream int) error {
	// One keyframe per stream per second, 64 s per index bucket; generated
	// in key order so bbolt only appends.
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	base -= base % bucketPeriod
	const batch = 200_000
	es := make([]indexEntry, 0, batch)
	flush := func() error {
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bktRecords)
			b.FillPercent = 0.95
			for i := range es {
				if err := b.Put(es[i].key(), es[i].value()); err != nil {
					return err
				}
			}
			return nil
		})
		es = es[:0]
		return err
	}
	for bk := 0; bk*64 < perStream; bk++ {
		for st := 0; st < streams; st++ {
			for i := bk * 64; i < min((bk+1)*64, perStream); i++ {
				t := base + int64(i)*int64(time.Second)
				es = append(es, indexEntry{stream: uint32(1000 + st), time0: t, gen: 1, offset: int64(i) * 4096, length: 4096, last: t + int64(960*time.Millisecond), frames: 25, flags: recKey | recTracks})
				if len(es) == batch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
	}
	return flush()
}

// BenchmarkOpenAfterCrash times Open of a crashed store whose index holds
// 10^6 keyframes, until an Append is accepted and durable. The head slot
// holds batches acknowledged after the index's checkpoint, as after a power
// cut between acknowledgement and index commit.
func BenchmarkOpenAfterCrash(b *testing.B) {
	dir := benchDir(b)
	ctx := context.Background()
	keyframes := envInt("NVR_BENCH_KEYFRAMES", 1_000_000)
	if _, err := Format(ctx, dir, FormatOptions{Size: 1 << 30, SlotSize: 256 << 20}); err != nil {
		b.Fatal(err)
	}
	ip := filepath.Join(dir, "index.db")
	db, err := bolt.Open(ip, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := bulkIndex(db, 1000, keyframes/1000); err != nil {
		b.Fatal(err)
	}
	db.Sync()
	db.Close()
	b.Logf("index of %d keyframes built in %v", keyframes, time.Since(t0).Round(time.Millisecond))
	s, err := Open(ctx, dir, Options{CommitInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ws := make([]*StreamWriter, 50)
	for i := range ws {
		ws[i], _ = s.Stream(fmt.Sprintf("cam%02d", i))
		ws[i].SetTracks(h264Tracks(byte(i)))
	}
	base := time.Now().Add(-time.Hour)
	feed := func(from, to int) {
		for sec := from; sec < to; sec++ {
			for _, w := range ws {
				gop(b, w, base.Add(time.Duration(sec)*time.Second), 1, 2000)
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	feed(0, 10)
	var snap bytes.Buffer
	if err := s.snapshotIndex(&snap); err != nil {
		b.Fatal(err)
	}
	feed(10, 20)
	s.crash()
	if err := os.WriteFile(ip, snap.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	pristine := filepath.Join(dir, "index.pristine")
	if err := os.WriteFile(pristine, snap.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	var worst time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		// Every run starts from the same crashed index.
		b.StopTimer()
		raw, _ := os.ReadFile(pristine)
		os.WriteFile(ip, raw, 0o600)
		b.StartTimer()
		t := time.Now()
		s, err := Open(ctx, dir, Options{CommitInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		w, _ := s.Stream("cam00")
		seq, err := w.Append(Frame{Time: base.Add(time.Hour), Key: true, Data: []byte("after the crash")})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil || s.Durable() < seq {
			b.Fatalf("flush: %v", err)
		}
		worst = max(worst, time.Since(t))
		b.StopTimer()
		if got := readAll(b, s, "cam05", base.Add(15*time.Second), base.Add(16*time.Second)); len(got) == 0 {
			b.Fatal("footage acknowledged after the checkpoint was not recovered")
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(worst.Seconds(), "open_to_durable_s")
}
