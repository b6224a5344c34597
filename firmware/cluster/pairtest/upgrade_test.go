package pairtest

import (
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

// mismatchAlarm reports whether a poll shows the version-mismatch alarm.
func mismatchAlarm(s poll) bool {
	for _, a := range s.Alarms {
		if strings.Contains(a, "runs firmware") {
			return true
		}
	}
	return false
}

// TestRigPairRollingUpgrade upgrades the pair between two firmware builds
// while it records: the standby first (restarted on N+1), a switchover to
// it, then the old primary. The version-mismatch alarm is raised while the
// versions differ and cleared after; the VIP's merged export of every
// camera over the whole upgrade has no gap beyond the frame period.
func TestRigPairRollingUpgrade(t *testing.T) {
	requireFFprobe(t)
	const oldV, newV = "1.0.0", "1.1.0"
	p := newPair(t, 6, oldV)
	e1 := p.up()
	time.Sleep(2 * time.Second)
	p.checkRoles(e1)
	from := time.Now()

	// 1. The standby restarts on N+1.
	t1 := time.Now()
	p.nodes[rig.Standby].proc.Stop(15 * time.Second)
	p.nodes[rig.Standby].bin = nvrd(t, newV)
	p.start(rig.Standby)
	p.waitPoll(rig.Standby, t1, 30*time.Second, "upgraded standby mirrors", func(s poll) bool {
		return s.Role == "standby" && s.Version == newV && s.Connected && s.Lag < 2
	})
	p.waitPoll(rig.Primary, t1, 10*time.Second, "version-mismatch alarm on the primary", func(s poll) bool {
		return s.VersionMismatch && s.PeerFirmware == newV && mismatchAlarm(s)
	})

	// 2. Switchover to the upgraded node.
	t2 := time.Now()
	if code, body := p.request("POST", apiBase(rig.Primary)+"/api/v1/cluster/switchover", ""); code != 200 {
		t.Fatalf("switchover: %d %s", code, body)
	}
	p.waitPoll(rig.Standby, t2, 20*time.Second, "upgraded node records", func(s poll) bool { return s.Role == "primary" && s.Recording == len(p.cams) })

	// 3. The old primary restarts on N+1.
	t3 := time.Now()
	p.nodes[rig.Primary].proc.Stop(15 * time.Second)
	p.nodes[rig.Primary].bin = nvrd(t, newV)
	p.start(rig.Primary)
	up3 := p.waitPoll(rig.Primary, t3, 30*time.Second, "old primary mirrors on N+1", func(s poll) bool {
		return s.Role == "standby" && s.Version == newV && s.Connected && s.Lag < 2
	})
	cleared := p.waitPoll(rig.Standby, t3, 15*time.Second, "version-mismatch alarm cleared", func(s poll) bool {
		return !s.VersionMismatch && s.PeerFirmware == newV && !mismatchAlarm(s) && s.Err == ""
	})
	time.Sleep(2 * time.Second)
	// No config divergence: both nodes show the same hash, committed
	// through raft by the primary.
	hp := p.waitPoll(rig.Primary, time.Now(), 5*time.Second, "a poll", func(poll) bool { return true })
	hs := p.waitPoll(rig.Standby, time.Now(), 5*time.Second, "a poll", func(poll) bool { return true })
	if hp.ConfigHash == "" || hp.ConfigHash != hs.ConfigHash {
		t.Errorf("committed config hash %q on the primary, %q on the standby", hp.ConfigHash, hs.ConfigHash)
	}
	for _, n := range []string{rig.Primary, rig.Standby} {
		for _, s := range p.polls(n) {
			if s.ConfigMismatch {
				t.Errorf("config mismatch reported by %s at %v: both nodes run the same cameras", n, s.At())
				break
			}
		}
	}
	checkContinuity(t, p, "rolling upgrade", from, apiBase("vip"), 2.5*framePeriod.Seconds())
	// The old primary (the standby now) holds the same history: its own
	// footage up to its stop, then the new primary's, merged.
	checkContinuity(t, p, "rolling upgrade (old primary)", from, apiBase(rig.Primary), 2.5*framePeriod.Seconds())
	t.Logf("rolling upgrade %s -> %s with %d cameras: standby upgraded and mirroring after %v (mismatch alarm raised), switchover took %v, old primary upgraded and mirroring after %v, mismatch alarm cleared %v after its restart",
		oldV, newV, len(p.cams), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond), up3.At().Sub(t3).Round(time.Millisecond), cleared.At().Sub(t3).Round(time.Millisecond))
}
