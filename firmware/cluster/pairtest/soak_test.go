package pairtest

import (
	"encoding/json"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/nfdelay"
	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

// TestRigPairDedicatedLinkSoak records on the pair while the dedicated link
// loses 50 % of its packets with 100 ± 50 ms delay in both directions, for
// 2 minutes (NVR_SOAK_MINUTES overrides; make soak runs 10): zero false
// failovers (no role or epoch change, one VIP holder), the mirror lag stays
// bounded (the mirror leaves the lossy link for the LAN), and both nodes'
// exports of every camera over the soak are continuous.
func TestRigPairDedicatedLinkSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak takes 2 minutes; skipped with -short")
	}
	requireFFprobe(t)
	dur := 2 * time.Minute
	if v := os.Getenv("NVR_SOAK_MINUTES"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m <= 0 {
			t.Fatalf("NVR_SOAK_MINUTES=%q", v)
		}
		dur = time.Duration(m) * time.Minute
	}
	p := newPair(t, 4, "1.0.0")
	e1 := p.up()
	p.checkRoles(e1)
	from := time.Now()
	var delays []*rigDelay
	for _, n := range []string{rig.Primary, rig.Standby} {
		p.r.Loss(n, "ded0", 50)
		p.r.QueueOutput(n, "ded0", 0)
		js, _ := json.Marshal(delayArgs{Delay: 100 * time.Millisecond, Jitter: 50 * time.Millisecond})
		delays = append(delays, &rigDelay{n, p.r.Start(n, "nfdelay-"+n, []string{helperEnv + "=nfdelay", argsEnv + "=" + string(js)}, p.self)})
	}
	tStart := time.Now()
	time.Sleep(dur)
	tEnd := time.Now()

	// Zero false failovers: every answered poll shows the same roles and
	// epoch throughout.
	var lags []float64
	paths := map[string]int{}
	var dedLoss float64
	for _, n := range []string{rig.Primary, rig.Standby} {
		for _, s := range p.polls(n) {
			if s.At().Before(tStart) || s.Err != "" {
				continue
			}
			if s.Role != n || s.Epoch != e1 {
				t.Errorf("false failover: %s was %s under epoch %d at %v (epoch %d before)", n, s.Role, s.Epoch, s.At(), e1)
				break
			}
			if n == rig.Primary {
				if s.At().After(tStart.Add(30 * time.Second)) {
					lags = append(lags, s.Lag)
				}
				paths[s.Path]++
			} else {
				dedLoss = s.DedicatedLoss
			}
		}
	}
	rounds, silent := p.checkOneHolder(tStart)
	sort.Float64s(lags)
	var p50, p99, hi float64
	if n := len(lags); n > 0 {
		p50, p99, hi = lags[n/2], lags[n*99/100], lags[n-1]
	}
	if hi > 10 {
		t.Errorf("mirror lag reached %.1f s (bound 10 s)", hi)
	}
	for _, d := range delays {
		d.p.Stop(5 * time.Second)
	}
	var stats []string
	for _, d := range delays {
		for _, l := range d.p.Lines() {
			var st nfdelay.Stats
			if json.Unmarshal([]byte(l.Text), &st) == nil && st.Delayed > 0 {
				stats = append(stats, d.node+": delayed "+strconv.FormatUint(st.Delayed, 10))
			}
		}
	}
	if len(stats) != 2 {
		t.Errorf("nfdelay did not delay on both nodes: %v", stats)
	}
	// Let the mirror settle, then both nodes' footage of the soak.
	p.waitPoll(rig.Standby, tEnd, 30*time.Second, "mirror caught up", func(s poll) bool { return s.Connected && s.Lag < 2 })
	time.Sleep(2 * time.Second)
	gapP := checkContinuity(t, p, "soak (primary)", from, apiBase(rig.Primary), 2.5*framePeriod.Seconds())
	gapS := checkContinuity(t, p, "soak (standby's mirror)", from, apiBase(rig.Standby), 2.5*framePeriod.Seconds())
	t.Logf("dedicated link 50%% loss + 100±50 ms both ways for %v with %d cameras recording: 0 role changes, epoch %d kept, ARP rounds %d (%d silent), one VIP holder; standby's dedicated-path loss %.2f; mirror path polls %v; mirror lag p50/p99/max %.2f/%.2f/%.2f s; largest frame gap primary %.3f s, standby %.3f s; nfdelay %v",
		dur, len(p.cams), e1, rounds, silent, dedLoss, paths, p50, p99, hi, gapP, gapS, stats)
}

type rigDelay struct {
	node string
	p    *rig.Proc
}
