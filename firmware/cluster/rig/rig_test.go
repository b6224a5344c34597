package rig_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/firmware/cluster/rig"
)

// TestRigBuildsAndCleansUp builds the rig in a subtest, checks the cabling
// (LAN and dedicated link), and checks every namespace is gone afterwards.
func TestRigBuildsAndCleansUp(t *testing.T) {
	rig.Require(t)
	var prefix string
	t.Run("build", func(t *testing.T) {
		r := rig.New(t)
		prefix = strings.TrimSuffix(r.NS(rig.LAN), "-"+rig.LAN)
		for _, c := range []struct{ from, to string }{
			{rig.Client, rig.LANAddr[rig.Primary]},
			{rig.Witness, rig.LANAddr[rig.Standby]},
			{rig.Primary, rig.DedAddr[rig.Standby]},
		} {
			out, err := exec.Command("ip", "netns", "exec", r.NS(c.from), "ping", "-n", "-c", "1", "-W", "2", c.to).CombinedOutput()
			if err != nil {
				t.Errorf("%s cannot reach %s: %v: %s", c.from, c.to, err, out)
			}
		}
		r.Loss(rig.Primary, "ded0", 100)
		if out, err := exec.Command("ip", "netns", "exec", r.NS(rig.Primary), "ping", "-n", "-c", "1", "-W", "1", rig.DedAddr[rig.Standby]).CombinedOutput(); err == nil {
			t.Errorf("100%% loss let a ping through: %s", out)
		}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix+"-") {
		t.Fatalf("namespaces left behind:\n%s", out)
	}
}
