package config

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv names the database a re-executed test binary writes to
// until it is killed.
const crashChildEnv = "NVR_CONFIG_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

// crashChild applies changes in a loop, printing "ok SEQ" after each commit,
// until killed (or after 100000 changes).
func crashChild(path string) int {
	s, err := Open(Options{Path: path, Argon2: fastArgon})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < 100000; i++ {
		site, err := s.Site()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var m Mutation
		if i%4 == 3 && len(site.Cameras) < maxCameras {
			// A bulk change touching every camera and a setting at once.
			age := time.Duration(i%1000+1) * time.Hour
			for j := range site.Cameras {
				site.Cameras[j].MaxAge = age
			}
			site.Storage.DefaultMaxAge = age
			m = ReplaceSite{Site: site, Source: "crash test"}
		} else if len(site.Cameras) < maxCameras {
			n := len(site.Cameras)
			m = AddCamera{Camera: Camera{Name: fmt.Sprintf("cam-%04d", n), URL: fmt.Sprintf("rtsp://192.0.2.1/%d", n), Enabled: true}}
		} else {
			m = ReplaceSite{Site: Site{}, Source: "crash test reset"}
		}
		ch, err := s.Apply("crash", m)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(out, "ok %d\n", ch.Seq)
		out.Flush()
	}
	return 0
}

// TestKill9MidChange SIGKILLs a writer at random moments and checks after
// each kill that every committed change is whole and none is half applied.
func TestKill9MidChange(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const kills = 20
	for round := range kills {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan uint64, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					lines <- n
				}
			}
		}()
		// Wait for the first commit, then let it run a random while.
		var acked uint64
		select {
		case acked = <-lines:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: child made no change: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for n := range lines {
			acked = n
		}
		_ = cmd.Wait()
		if stderr.Len() > 0 {
			t.Fatalf("round %d: child failed: %s", round, stderr.String())
		}
		checkCrashInvariants(t, path, acked)
	}
	s := openTest(t, path)
	if a, _ := s.Audit(0, 1); len(a) == 1 {
		t.Logf("%d kills over %d committed changes", kills, a[0].Seq)
	}
}

func checkCrashInvariants(t *testing.T, path string, acked uint64) {
	t.Helper()
	s, err := Open(Options{Path: path, Argon2: fastArgon})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("after kill: %v", err)
	}
	site, _ := s.Site()
	audit, err := s.Audit(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) == 0 || audit[0].Seq < acked {
		t.Fatalf("acknowledged change %d lost (audit has %d entries)", acked, len(audit))
	}
	// The audit log is gap-free: one entry per committed change.
	for i, e := range audit {
		if e.Seq != audit[0].Seq-uint64(i) {
			t.Fatalf("audit gap at %d: seq %d", i, e.Seq)
		}
	}
	// Cameras added since the last reset are exactly those the audit says.
	adds := 0
	for _, e := range audit {
		if e.Kind == "site.import" && strings.Contains(e.What, "crash test reset") {
			break
		}
		if e.Kind == "camera.add" {
			adds++
		}
	}
	if adds != len(site.Cameras) {
		t.Fatalf("%d cameras stored, audit shows %d added", len(site.Cameras), adds)
	}
	// A bulk change is all-or-nothing: cameras older than the last one carry
	// its retention, newer ones none.
	d := site.Storage.DefaultMaxAge
	seenZero := false
	for _, c := range site.Cameras {
		switch {
		case c.MaxAge == 0:
			seenZero = true
		case c.MaxAge != d || seenZero:
			t.Fatalf("half-applied bulk change: %s has %v, default %v", c.Name, c.MaxAge, d)
		}
	}
}
