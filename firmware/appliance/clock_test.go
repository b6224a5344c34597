package appliance

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/config"
)

// ntpServer answers SNTP requests on 127.0.0.1 with a clock offset ahead.
func ntpServer(t *testing.T, offset time.Duration) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			ts := func(t time.Time) uint64 {
				sec := uint64(t.Unix() + 2208988800)
				return sec<<32 | (uint64(t.Nanosecond())<<32)/1e9
			}
			r := make([]byte, 48)
			r[0], r[1] = 4<<3|4, 2
			copy(r[24:32], buf[40:48])
			now := time.Now().Add(offset)
			binary.BigEndian.PutUint64(r[32:], ts(now))
			binary.BigEndian.PutUint64(r[40:], ts(now))
			_, _ = c.WriteToUDP(r, from)
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestClockFollowsNTP: an appliance that owns its clock sets it from the
// configured NTP server, and says so in its metrics.
func TestClockFollowsNTP(t *testing.T) {
	port := ntpServer(t, 42*time.Second)
	cfgPath := filepath.Join(t.TempDir(), "config.db")
	cfg, err := config.Open(config.Options{Path: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Apply("test", config.SetTime{Time: config.Time{NTPServers: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Close(); err != nil {
		t.Fatal(err)
	}
	set := make(chan time.Time, 4)
	addr, _ := startApp(t, Options{
		DataDir: formatStore(t, 16<<20), ConfigPath: cfgPath, NTPPort: port,
		APITokens: map[string]string{"tok": "test"},
		SetClock:  func(t time.Time) error { set <- t; return nil },
		SlewClock: func(time.Duration) error { t.Error("a 42 s offset must step, not slew"); return nil },
	})
	select {
	case got := <-set:
		if d := got.Sub(time.Now().Add(42 * time.Second)); d < -2*time.Second || d > 2*time.Second {
			t.Fatalf("clock set to %v, want about now + 42 s (off by %v)", got, d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the clock was not set from the NTP server within 20 s")
	}
	c := client{t: t, base: "http://" + addr, token: "tok"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, body := c.get("/metrics")
		if strings.Contains(string(body), "nvr_time_synced 1") && strings.Contains(string(body), "nvr_time_steps_total 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not say the clock is synced:\n%s", grepLines(string(body), "nvr_time"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var st api.Status
	c.getJSON("/api/v1/status", &st)
	if tm := st.Time; tm == nil || !tm.Synced || tm.Server != "127.0.0.1" || tm.Adjusting != "step" ||
		time.Duration(tm.Offset) < 40*time.Second || len(tm.NTPServers) != 1 {
		t.Fatalf("status time %+v, want synced with 127.0.0.1 after a step of about 42 s", tm)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
