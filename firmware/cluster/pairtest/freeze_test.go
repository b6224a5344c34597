package pairtest

import (
	"syscall"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

// TestRigPairFreezePrimary freezes the recording primary (SIGSTOP, a kernel
// hang) until the standby has taken over, then resumes it: the resumed node
// finds itself fenced, drops the VIP and rejoins as the standby; there is
// never a second VIP holder, and no interval is recorded twice into
// conflicting history (the VIP's merged export of every camera has no frame
// twice and no time going back).
func TestRigPairFreezePrimary(t *testing.T) {
	requireFFprobe(t)
	p := newPair(t, 6, "1.0.0")
	e1 := p.up()
	time.Sleep(2 * time.Second)
	from := time.Now()
	pr := p.nodes[rig.Primary].proc
	p.checkRoles(e1)
	tStop := time.Now()
	if err := pr.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tVIP := p.firstARP(rig.Standby, tStop, 10*time.Second)
	st := p.waitPoll(rig.Standby, tStop, 20*time.Second, "standby records", func(s poll) bool { return s.Role == "primary" && s.Recording == len(p.cams) })
	time.Sleep(time.Second)
	tCont := time.Now()
	if err := pr.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := p.waitPoll(rig.Primary, tCont, 20*time.Second, "resumed node is the standby", func(s poll) bool {
		return s.Role == "standby" && s.Recording == 0 && s.Connected
	})
	fenced, _ := p.logLine(rig.Primary, tCont, `msg="cluster role"`, "role=standby")
	time.Sleep(2 * time.Second)
	rounds, silent := p.checkOneHolder(tStop.Add(-2 * time.Second))
	for _, a := range p.arps() {
		if a.At().After(tCont) && len(a.MACs) == 1 && a.MACs[0] == p.nodes[rig.Primary].mac {
			t.Errorf("the resumed node answered for the VIP at %v", a.At())
			break
		}
	}
	// The gap is the freeze's detection plus the first keyframe: the issue
	// sets no bound for it (the kill test holds the 3 s one); 10 s is sanity.
	gap := checkContinuity(t, p, "freeze (VIP)", from.Add(time.Second), apiBase("vip"), 10)
	// The resumed node: its own footage up to the freeze, then the new
	// primary's; what its sessions delivered on waking was never written.
	checkContinuity(t, p, "freeze (resumed node)", from.Add(time.Second), apiBase(rig.Primary), 10)
	t.Logf("primary frozen: recording gap up to %.2f s; VIP answering from the standby after %v (epoch %d -> %d); resumed node stood down %v after SIGCONT and mirrors as standby (poll at +%v); ARP rounds %d (%d silent), never two holders",
		gap, tVIP.Sub(tStop).Round(time.Millisecond), e1, st.Epoch, fenced.Sub(tCont).Round(time.Millisecond), back.At().Sub(tCont).Round(time.Millisecond), rounds, silent)
}
