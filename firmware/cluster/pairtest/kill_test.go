package pairtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

// TestRigPairKillPrimaryAndFailback records 20 cameras on the pair, kills
// the primary with SIGKILL (a power cut) and measures, from the exported
// footage of both nodes: detection, the VIP answering from the standby (ARP
// from the client namespace), the recording gap per camera, and that every
// frame the standby acknowledged is in its export. Then the killed node
// comes back as the standby, receives the outage footage, and a switchover
// over the API hands recording back without losing a frame.
func TestRigPairKillPrimaryAndFailback(t *testing.T) {
	requireFFprobe(t)
	p := newPair(t, 20, "1.0.0")
	e1 := p.up()
	time.Sleep(6 * time.Second) // steady recording and mirroring
	from := time.Now().Add(-4 * time.Second)
	p.checkRoles(e1)
	tKill := p.kill(rig.Primary)

	// Detection and takeover, from the standby's log.
	tDetect, ok := p.logLine(rig.Standby, tKill.Add(-time.Second), "heartbeat timeout reached")
	for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		tDetect, ok = p.logLine(rig.Standby, tKill.Add(-time.Second), "heartbeat timeout reached")
	}
	if !ok {
		t.Fatal("the standby never noticed the primary's death")
	}
	tVIP := p.firstARP(rig.Standby, tKill, 10*time.Second)
	st := p.waitPoll(rig.Standby, tKill, 20*time.Second, "standby records every camera", func(s poll) bool { return s.Role == "primary" && s.Recording == len(p.cams) })
	tPrimary, _ := p.logLine(rig.Standby, tKill, `msg="cluster role"`, "role=primary")
	if st.Epoch <= e1 {
		t.Errorf("epoch %d after takeover, was %d", st.Epoch, e1)
	}
	time.Sleep(3 * time.Second)

	// Footage: the dead primary's volume with nvrd export, the standby's
	// over the VIP as a VMS would.
	var acked map[string]map[string]int64
	var ms struct {
		Received map[string]map[string]int64 `json:"received"`
	}
	if b, err := os.ReadFile(filepath.Join(p.nodes[rig.Standby].dir, "cluster", "mirror-state.json")); err != nil {
		t.Fatalf("standby mirror state: %v", err)
	} else if err := json.Unmarshal(b, &ms); err != nil {
		t.Fatal(err)
	}
	acked = ms.Received
	var gaps, tails []float64
	for _, cam := range p.cams {
		pp := p.exportOffline(rig.Primary, cam, from, tKill.Add(5*time.Second))
		sp := p.exportAPI(apiBase("vip"), cam, from, "kill-vip")
		if len(pp) == 0 || len(sp) == 0 || !same(pp[0], sp[0]) {
			t.Fatalf("%s: exports do not start at the same frame (%d and %d packets)", cam, len(pp), len(sp))
		}
		k := 0
		for k < len(pp) && k < len(sp) && same(pp[k], sp[k]) {
			k++
		}
		if k == len(sp) {
			t.Fatalf("%s: the standby recorded nothing after the primary's footage", cam)
		}
		last := pp[len(pp)-1]
		if sp[k].pts <= last.pts {
			t.Errorf("%s: the standby's own footage starts at %.3f s, before the primary's last frame %.3f s (recorded twice)", cam, sp[k].pts, last.pts)
		}
		gap := sp[k].pts - last.pts
		gaps = append(gaps, gap)
		tails = append(tails, last.pts-sp[k-1].pts)
		if d, at := maxDelta(sp[k:]); d > 3*framePeriod.Seconds() {
			t.Errorf("%s: a %.3f s gap at %.3f s in the standby's own recording", cam, d, sp[k+at].pts)
		}
		// Every frame the standby acknowledged is in its export: the
		// acknowledged watermark (absolute) against the dead primary's
		// volume read directly.
		frames := storeFrameTimes(t, p.nodes[rig.Primary].store(), cam, from.Add(-5*time.Second), tKill.Add(5*time.Second))
		wm := time.Unix(0, acked[rig.Primary][cam])
		t0 := time.Time{}
		for _, f := range frames {
			if f.Key && !f.Time.After(from) {
				t0 = f.Time
			}
		}
		ackedFrames := 0
		for _, f := range frames {
			if !f.Time.Before(t0) && !f.Time.After(wm) {
				ackedFrames++
			}
		}
		if ackedFrames > k {
			t.Errorf("%s: the standby acknowledged %d frames of the window (up to %s) but its export holds %d of them", cam, ackedFrames, wm.Format("15:04:05.000"), k)
		}
	}
	gLo, gMed, gHi := stats(gaps)
	tLo, tMed, tHi := stats(tails)
	detect := tDetect.Sub(tKill)
	vip := tVIP.Sub(tKill)
	t.Logf("primary SIGKILLed while recording %d cameras: detection %v (standby's election timer), primary role %v, VIP answering from the standby %v (ARP from the client ns); recording gap per camera from both nodes' exports min/median/max %.2f/%.2f/%.2f s; primary's frames missing on the standby (committed, not yet mirrored) min/median/max %.2f/%.2f/%.2f s; epoch %d -> %d",
		len(p.cams), detect.Round(time.Millisecond), tPrimary.Sub(tKill).Round(time.Millisecond), vip.Round(time.Millisecond), gLo, gMed, gHi, tLo, tMed, tHi, e1, st.Epoch)
	if detect > 1500*time.Millisecond {
		t.Errorf("detection %v > 1.5 s", detect)
	}
	if vip > 2*time.Second {
		t.Errorf("VIP answering after %v > 2 s", vip)
	}
	if gHi > 3 {
		t.Errorf("recording gap %.2f s > 3 s", gHi)
	}
	p.checkOneHolder(tKill.Add(-5 * time.Second))

	failback(t, p, tKill, from)
}

// failback restarts the killed primary: it joins as the standby and
// receives the outage footage; then a switchover over the API moves
// recording back to it without losing a frame.
func failback(t *testing.T, p *pair, tKill, from time.Time) {
	tRestart := time.Now()
	p.start(rig.Primary)
	p.waitPoll(rig.Primary, tRestart, 30*time.Second, "restarted node mirrors as standby", func(s poll) bool {
		return s.Role == "standby" && s.Connected && s.Batches > 0 && s.Lag < 2
	})
	caught := time.Since(tRestart)
	time.Sleep(2 * time.Second)
	// The outage footage is on the returning node: after its own frames
	// (up to its death) come the new primary's, as on the new primary.
	for _, cam := range p.cams[:4] {
		rp := p.exportAPI(apiBase(rig.Primary), cam, from, "failback-returned")
		np := p.exportAPI(apiBase("vip"), cam, from, "failback-vip")
		_, at := maxDelta(rp)
		_, atN := maxDelta(np)
		if at == 0 || atN == 0 {
			t.Fatalf("%s: no outage gap in the exports (%d, %d packets)", cam, len(rp), len(np))
		}
		n := 0
		for i := 0; at+i < len(rp) && atN+i < len(np) && same(rp[at+i], np[atN+i]); i++ {
			n++
		}
		if n < 25*3 {
			t.Errorf("%s: the returning node holds %d frames of the new primary's footage after the outage, want at least 3 s", cam, n)
		}
	}
	t.Logf("failback: the killed node restarted as standby and caught up (mirror lag < 2 s) in %v", caught.Round(time.Millisecond))

	// Switchover back, over the API, while the VMS watches. Asked on the
	// primary's own address: the VIP moves during the request.
	tSw := time.Now()
	code, body := p.request("POST", apiBase(rig.Standby)+"/api/v1/cluster/switchover", "")
	if code != 200 {
		t.Fatalf("switchover: %d %s", code, body)
	}
	took := time.Since(tSw)
	p.waitPoll(rig.Primary, tSw, 20*time.Second, "the returned node records", func(s poll) bool { return s.Role == "primary" && s.Recording == len(p.cams) })
	time.Sleep(3 * time.Second)
	checkContinuity(t, p, "switchover", tSw.Add(-3*time.Second), apiBase("vip"), 2.5*framePeriod.Seconds())
	t.Logf("switchover over the API took %v", took.Round(time.Millisecond))
}

// checkContinuity exports every camera from base (merged with backfill)
// from since and checks it has no gap beyond maxGap seconds and no frame
// twice; it returns the largest gap.
func checkContinuity(t *testing.T, p *pair, what string, since time.Time, base string, maxGap float64) float64 {
	t.Helper()
	var worst []string
	var deltas []float64
	for _, cam := range p.cams {
		ps := p.exportAPI(base, cam, since, strings.ReplaceAll(what, " ", "-"))
		d, at := maxDelta(ps)
		deltas = append(deltas, d)
		if d > maxGap {
			worst = append(worst, fmt.Sprintf("%s %.3f s at %.3f s", cam, d, ps[at].pts))
		}
		if n := duplicates(ps); n > 0 {
			t.Errorf("%s: %s: %d frames at the time of the one before or earlier (recorded twice)", what, cam, n)
		}
	}
	lo, med, hi := stats(deltas)
	t.Logf("%s: largest time between frames per camera in the merged export of %s min/median/max %.3f/%.3f/%.3f s (frame period %.3f s)", what, base, lo, med, hi, framePeriod.Seconds())
	if len(worst) > 0 {
		t.Errorf("%s: gaps over %.3f s: %s", what, maxGap, strings.Join(worst, "; "))
	}
	return hi
}
