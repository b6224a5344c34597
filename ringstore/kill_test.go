package ringstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real-process crash test: a writer process (this test binary,
// re-executed into TestKillWriterProcess) appends to a store in a real
// directory and prints each frame once it is durable; the test SIGKILLs it
// at a random moment, reopens the store, checks it, and starts the next
// writer on the same volume.

const (
	killDirEnv   = "NVR_RINGSTORE_KILL_DIR"
	killCycleEnv = "NVR_RINGSTORE_KILL_CYCLE"
	killStreams  = 3
)

// killFrame returns the bytes and key flag of the writer's frame id: both
// follow from the id alone, so any frame read back can be checked.
func killFrame(id crashFrameID) ([]byte, bool) {
	n := id.Idx & 0xffffffff
	key := n%10 == 0
	size := 200 + int((id.Idx*2654435761+uint64(id.Stream)*97)%1800)
	if key {
		size += 3000
	}
	return crashFrameData(id, 0, true, key, size), key
}

// TestKillWriterProcess is the writer process of TestKillRecovery; run
// directly it has nothing to do.
func TestKillWriterProcess(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("helper process of TestKillRecovery; it runs only when re-executed by that test")
	}
	cycle, err := strconv.ParseUint(os.Getenv(killCycleEnv), 10, 32)
	if err != nil {
		t.Fatalf("bad %s: %v", killCycleEnv, err)
	}
	if err := runKillWriter(dir, cycle, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// runKillWriter appends killStreams streams of frames until it is killed
// (or 20 s pass), writing "ack STREAM IDX UNIXNANO" for each frame once the
// store reports it durable.
func runKillWriter(dir string, cycle uint64, stdout io.Writer) error {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{CommitInterval: 15 * time.Millisecond})
	if err != nil {
		return err
	}
	defer s.Close()
	out := bufio.NewWriter(stdout)
	fmt.Fprintf(out, "open %d\n", cycle)
	out.Flush()
	ws := make([]*StreamWriter, killStreams)
	for i := range ws {
		if ws[i], err = s.Stream(crashStreamName(i)); err != nil {
			return err
		}
		if err := ws[i].SetTracks(crashTrackTable(i, 0)[:1]); err != nil {
			return err
		}
	}
	type pending struct {
		seq  uint64
		line string
	}
	var q []pending
	deadline := time.Now().Add(20 * time.Second)
	for n := uint64(0); time.Now().Before(deadline); n++ {
		for si, w := range ws {
			id := crashFrameID{Stream: si, Idx: cycle<<32 | n}
			data, key := killFrame(id)
			at := time.Now()
			seq, err := w.Append(Frame{Track: 0, Time: at, Key: key, Data: data})
			if errors.Is(err, ErrBackpressure) {
				continue
			}
			if err != nil {
				return fmt.Errorf("append %v: %w", id, err)
			}
			q = append(q, pending{seq, fmt.Sprintf("ack %d %d %d\n", si, id.Idx, at.UnixNano())})
		}
		d := s.Durable()
		k := 0
		for ; k < len(q) && q[k].seq <= d; k++ {
			out.WriteString(q[k].line)
		}
		q = q[k:]
		if err := out.Flush(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// killAck is a frame the writer reported durable.
type killAck struct {
	id   crashFrameID
	time int64
}

// runKilledWriter starts a writer for cycle, kills it with SIGKILL after
// delay, and returns the complete ack lines it printed and whether it had
// opened the store.
func runKilledWriter(t *testing.T, dir string, cycle int, delay time.Duration) ([]killAck, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillWriterProcess$", "-test.count=1", "-test.timeout=30s")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir, fmt.Sprintf("%s=%d", killCycleEnv, cycle))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		acks   []killAck
		opened bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // a line cut by the kill has no newline: not acknowledged
			}
			f := strings.Fields(line)
			mu.Lock()
			switch {
			case len(f) == 2 && f[0] == "open":
				opened = true
			case len(f) == 4 && f[0] == "ack":
				si, _ := strconv.Atoi(f[1])
				idx, _ := strconv.ParseUint(f[2], 10, 64)
				ns, _ := strconv.ParseInt(f[3], 10, 64)
				acks = append(acks, killAck{crashFrameID{Stream: si, Idx: idx}, ns})
			}
			mu.Unlock()
		}
	}()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill writer: %v", err)
	}
	wg.Wait()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		// The writer exited by itself: it failed (or was never killed).
		t.Fatalf("cycle %d: writer did not die by the kill: %v\n%s", cycle, err, stderr.Bytes())
	}
	mu.Lock()
	defer mu.Unlock()
	return acks, opened
}

// TestKillRecovery kills a real writer process at random moments and
// checks the store after each kill.
func TestKillRecovery(t *testing.T) {
	cycles := 50
	if *crashLong {
		cycles = 200
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	ctx := context.Background()
	// Large enough never to wrap (about 0.2 MiB per cycle is written), so
	// that every acknowledged frame must still be there at the end.
	slots := int64(16 + cycles/2)
	if _, err := Format(ctx, dir, FormatOptions{Size: slots * MinSlotSize, SlotSize: MinSlotSize}); err != nil {
		t.Fatal(err)
	}
	from := time.Now().Add(-time.Minute)
	acked := map[crashFrameID]int64{}
	opened, withAcks := 0, 0
	budget := time.Now().Add(time.Duration(cycles) * 1500 * time.Millisecond) // about 0.3 s each when idle
	for c := 1; c <= cycles; c++ {
		if time.Now().After(budget) {
			t.Errorf("stopped after %d of %d cycles: over the time budget", c-1, cycles)
			break
		}
		// Mostly 100-300 ms; one in five kills early, during start-up
		// or recovery.
		delay := time.Duration(100+rng.IntN(200)) * time.Millisecond
		if rng.IntN(5) == 0 {
			delay = time.Duration(5+rng.IntN(60)) * time.Millisecond
		}
		acks, ok := runKilledWriter(t, dir, c, delay)
		if ok {
			opened++
		}
		if len(acks) > 0 {
			withAcks++
		}
		for _, a := range acks {
			acked[a.id] = a.time
		}
		checkAfterKill(t, dir, c, from, acked, c%10 == 0 || c == cycles)
		if t.Failed() {
			t.Fatalf("cycle %d (kill after %v, %d acks this cycle) failed; seed %d", c, delay, len(acks), seed)
		}
	}
	t.Logf("%d kills: the writer had opened the store in %d and acknowledged frames in %d; %d frames acknowledged in all",
		cycles, opened, withAcks, len(acked))
	if withAcks < cycles/4 {
		t.Errorf("only %d of %d writers acknowledged anything: the test is not exercising the store", withAcks, cycles)
	}
	checkResumeAfterKill(t, dir)
}

// checkAfterKill opens the store in dir and checks every invariant; with
// rebuild it also compares the index with one rebuilt from the slots.
func checkAfterKill(t *testing.T, dir string, cycle int, from time.Time, acked map[crashFrameID]int64, rebuild bool) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{CommitInterval: time.Hour})
	if err != nil {
		t.Fatalf("cycle %d: open after kill: %v", cycle, err)
	}
	defer s.Close()
	to := time.Now().Add(time.Minute)
	seen := map[crashFrameID]bool{}
	for si := range killStreams {
		name := crashStreamName(si)
		frames, err := crashReadStream(s, name, from, to)
		if err != nil {
			t.Errorf("cycle %d: read %s: %v", cycle, name, err)
		}
		var last uint64
		for i, f := range frames {
			id, ok := crashParseID(f.Data)
			want, key := killFrame(id)
			switch {
			case !ok || id.Stream != si:
				t.Errorf("cycle %d: %s frame %d is not a frame written to it", cycle, name, i)
				continue
			case !bytes.Equal(f.Data, want) || f.Key != key:
				t.Errorf("cycle %d: %s frame %d (%#x) corrupt", cycle, name, i, id.Idx)
			case seen[id]:
				t.Errorf("cycle %d: %s frame %d (%#x) returned twice", cycle, name, i, id.Idx)
			case i > 0 && id.Idx <= last:
				t.Errorf("cycle %d: %s frame %d (%#x) out of order after %#x", cycle, name, i, id.Idx, last)
			}
			if ns, ok := acked[id]; ok && f.Time.UnixNano() != ns {
				t.Errorf("cycle %d: %s frame %#x time %d, acknowledged with %d", cycle, name, id.Idx, f.Time.UnixNano(), ns)
			}
			seen[id], last = true, id.Idx
		}
	}
	missing := 0
	for id := range acked {
		if !seen[id] {
			if missing < 5 {
				t.Errorf("cycle %d: acknowledged frame %s %#x missing", cycle, crashStreamName(id.Stream), id.Idx)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("cycle %d: %d acknowledged frames missing", cycle, missing)
	}
	if st := s.Stats(); st.FreeSlots < 2 {
		t.Fatalf("cycle %d: only %d free slots left: the volume is too small for this test and will wrap", cycle, st.FreeSlots)
	}
	rep, err := s.Check(ctx, nil)
	if err != nil || !rep.Healthy() {
		t.Errorf("cycle %d: check: %v %+v", cycle, err, rep)
	}
	if !rebuild {
		return
	}
	before, err := crashViewOf(s, from, to)
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("cycle %d: close: %v", cycle, err)
	}
	path := filepath.Join(t.TempDir(), "rebuilt.db")
	opts := Options{IndexPath: path, CommitInterval: time.Hour}
	if err := Rebuild(ctx, dir, opts); err != nil {
		t.Fatalf("cycle %d: rebuild: %v", cycle, err)
	}
	r, err := Open(ctx, dir, opts)
	if err != nil {
		t.Fatalf("cycle %d: open rebuilt: %v", cycle, err)
	}
	defer r.Close()
	after, err := crashViewOf(r, from, to)
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	if d := crashDiffViews(before, after); d != "" {
		t.Errorf("cycle %d: index differs from the one rebuilt from the slots: %s", cycle, d)
	}
}

// checkResumeAfterKill appends to every stream after the last kill and
// reads it back.
func checkResumeAfterKill(t *testing.T, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dir, Options{CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Now().Add(time.Second)
	for si := range killStreams {
		w, err := s.Stream(crashStreamName(si))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := killFrame(crashFrameID{Stream: si, Idx: 1<<40 | 10})
		if _, err := w.Append(Frame{Track: 0, Time: at, Key: true, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for si := range killStreams {
		got, err := crashReadStream(s, crashStreamName(si), at, at.Add(time.Second))
		if err != nil || len(got) != 1 || !got[0].Time.Equal(at) {
			t.Errorf("resume: %s: read back %d frames (err %v), want the one appended", crashStreamName(si), len(got), err)
		}
	}
}
