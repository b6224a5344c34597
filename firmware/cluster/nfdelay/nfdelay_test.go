package nfdelay_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/nfdelay"
	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

func TestNewValidates(t *testing.T) {
	for _, o := range []nfdelay.Options{{}, {Delay: time.Millisecond, Jitter: 2 * time.Millisecond}, {Delay: time.Millisecond, Jitter: -1}} {
		if _, err := nfdelay.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestDelayOnDedicatedLink delays what the primary sends on the rig's
// dedicated link by 100 ± 50 ms and checks ping's round trips (only one way
// is delayed) fall in 50–150 ms plus the link's own sub-millisecond time.
func TestDelayOnDedicatedLink(t *testing.T) {
	r := rig.New(t) // requires ping too
	r.QueueOutput(rig.Primary, "ded0", 0)
	ns, err := os.Open("/var/run/netns/" + r.NS(rig.Primary))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	d, err := nfdelay.New(nfdelay.Options{Delay: 100 * time.Millisecond, Jitter: 50 * time.Millisecond, NetNS: int(ns.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	out, err := exec.Command("ip", "netns", "exec", r.NS(rig.Primary), "ping", "-n", "-c", "20", "-i", "0.05", "-W", "2", rig.DedAddr[rig.Standby]).CombinedOutput()
	cancel()
	if rerr := <-done; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("ping: %v: %s", err, out)
	}
	var rtts []float64
	for _, m := range regexp.MustCompile(`time=([0-9.]+) ms`).FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		rtts = append(rtts, v)
	}
	if len(rtts) < 18 {
		t.Fatalf("%d replies of 20:\n%s", len(rtts), out)
	}
	lo, hi, sum := rtts[0], rtts[0], 0.0
	for _, v := range rtts {
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	st := d.Stats()
	t.Logf("ping over a 100±50 ms delayed link: %d replies, RTT min %.1f avg %.1f max %.1f ms; delayed %d released %d errors %d",
		len(rtts), lo, sum/float64(len(rtts)), hi, st.Delayed, st.Released, st.Errors)
	if lo < 49 || hi > 170 {
		t.Errorf("RTT outside 50–150 ms (+ slack): min %.1f max %.1f", lo, hi)
	}
	if st.Delayed < 20 || st.Released != st.Delayed {
		t.Errorf("stats %+v", st)
	}
}
