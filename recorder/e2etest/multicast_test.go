package e2etest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
)

// multicastInner is set in the environment of the copy of this test binary
// that runs inside the namespace.
const multicastInner = "NVR_E2E_MULTICAST_INNER"

// multicastHost is the camera's address inside the namespace.
const multicastHost = "10.79.0.1"

// TestRecordMulticast records a camera over RTSP with UDP multicast
// transport. Multicast needs a group route on an interface with a routable
// address (from loopback the kernel sends groups with source 0.0.0.0,
// which receivers rightly drop), so the recording runs in a network
// namespace the test makes: a veth pair whose one end carries 10.79.0.1/24
// and the route for 224.0.0.0/4. The test re-runs itself there with `ip
// netns exec`, and deletes the namespace (and the veth with it) after.
func TestRecordMulticast(t *testing.T) {
	if os.Getenv(multicastInner) != "" {
		recordMulticast(t)
		return
	}
	need := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("multicast test: %s (CI must run it)", why)
		}
		t.Skipf("multicast test: %s", why)
	}
	if os.Geteuid() != 0 {
		need("needs root for a network namespace")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		need("needs ip (iproute2)")
	}
	ns := fmt.Sprintf("nvrmc-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v\n%s", ns, err, out)
		}
	})
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "link", "add", "mc0", "type", "veth", "peer", "name", "mc1")
	run("-n", ns, "link", "set", "mc0", "up")
	run("-n", ns, "link", "set", "mc1", "up")
	run("-n", ns, "addr", "add", multicastHost+"/24", "dev", "mc0")
	run("-n", ns, "route", "add", "224.0.0.0/4", "dev", "mc0")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, os.Args[0], "-test.run", "^TestRecordMulticast$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), multicastInner+"=1")
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log("  | " + l)
	}
	if err != nil {
		t.Fatalf("the recording in namespace %s failed: %v", ns, err)
	}
	if !strings.Contains(string(out), "--- PASS: TestRecordMulticast") {
		t.Fatal("the run in the namespace did not pass the test")
	}
}

// recordMulticast is the part that runs inside the namespace.
func recordMulticast(t *testing.T) {
	_, ffprobe := tools(t)
	sim, err := camsim.New(camsim.Options{Address: multicastHost + ":0", ClipDir: clipDir(t), SenderReportPeriod: time.Second,
		MulticastIPRange: "239.77.0.0/16", MulticastPort: 18002})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.AddPath("cam", camsim.PathConfig{Video: camsim.H264, Audio: camsim.AAC}); err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	rec := record(t, recorder.Camera{Name: "mcast", URL: sim.URL("cam"), Transport: recorder.TransportMulticast})
	file, plan := export(t, rec, "mcast")
	checkAgainstSent(t, sim, rec, plan, checkExport(t, ffprobe, file, "h264", plan, rec.to))
}
