package appliance

import (
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/watchdog"
	"github.com/nvrfw/nvr/watchdog/watchdogtest"
)

// freeAddrs returns n loopback addresses with free ports of network
// ("tcp" or "udp").
func freeAddrs(t *testing.T, network string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		if network == "udp" {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c.LocalAddr().String())
			c.Close()
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		l.Close()
	}
	return out
}

// TestClusterStandbyAlone runs one data node of a pair whose peers never
// answer: without a quorum it is the standby. It records nothing (camera
// sessions run only on the primary), yet it is healthy (the watchdog and a
// firmware trial depend on it), and the pair's API, metrics and console
// view work.
func TestClusterStandbyAlone(t *testing.T) {
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"cam1": {Video: camsim.H264}})
	bs, err := pairing.Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	raft := freeAddrs(t, "tcp", 4)
	hb := freeAddrs(t, "udp", 2)
	dir := t.TempDir()
	// Booted on a firmware trial, with a hardware watchdog: a standby
	// records nothing, so a camera that could not record (dead) does not
	// matter; the watchdog is petted and the trial confirmed.
	slotsM := trialSlots(t)
	dog := watchdogtest.NewDog(3*time.Second, false, nil)
	opts := Options{DataDir: formatStore(t, 64<<20), Cameras: []recorder.Camera{{Name: "cam1", URL: sim.URL("cam1")}, {Name: "dead", URL: "rtsp://127.0.0.1:1/none"}},
		APITokens: map[string]string{"tok": "test"}, Version: "9.9.9",
		Firmware: &Firmware{Slots: slotsM, Booted: slots.B, ConfirmAfter: time.Second},
		test:     testHooks{watchdog: &watchdog.Options{Device: dog, Timeout: 3 * time.Second, Interval: 200 * time.Millisecond, BootGrace: -1}},
		Cluster: &ClusterOptions{ID: "a", Dir: dir, Pairing: bs[0], MirrorBind: raft[3],
			Peers:     []cluster.Peer{{ID: "a", Addr: raft[0]}, {ID: "b", Addr: raft[1]}, {ID: "w", Addr: raft[2], Witness: true}},
			Heartbeat: []heartbeat.Path{{Name: "lan", Local: hb[0], Peer: hb[1]}}}}
	before := runtime.NumGoroutine()
	addr, stop := startApp(t, opts)
	c := client{t: t, base: "http://" + addr, token: "tok"}
	time.Sleep(3 * time.Second) // raft elections fail without peers
	if code, _, body := c.get("/api/v1/cameras"); code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("cameras on the standby: %d %s, want none recording", code, body)
	}
	if code, _, body := c.get("/healthz"); code != 200 {
		t.Errorf("healthz on the standby: %d %s, want healthy without recording", code, body)
	}
	code, _, body := c.get("/api/v1/cluster")
	var cs api.ClusterStatus
	if code != 200 || json.Unmarshal(body, &cs) != nil || cs.Role != "standby" || cs.Node != "a" || len(cs.Members) != 3 || cs.Firmware != "9.9.9" {
		t.Errorf("cluster: %d %s", code, body)
	}
	if cs.Mirror.Side != "receiver" {
		t.Errorf("mirror side %q on the standby, want receiver", cs.Mirror.Side)
	}
	_, _, metrics := c.get("/metrics")
	for _, want := range []string{`nvr_cluster_role{role="standby"} 1`, `nvr_cluster_role{role="primary"} 0`, `nvr_cluster_heartbeat_up{path="lan"} 0`, "nvr_cluster_takeovers_total 0"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if dog.Pets() < 3 {
		t.Errorf("watchdog petted %d times on the standby", dog.Pets())
	}
	waitUntil(t, "trial confirmed on the standby", 10*time.Second, func() bool {
		st, err := slotsM.Status(slots.B)
		return err == nil && st.Default == slots.B
	})
	// A switchover needs a peer.
	req := c.base + "/api/v1/cluster/switchover"
	if code := postCode(t, req, "tok"); code != 409 {
		t.Errorf("switchover without a peer: %d, want 409", code)
	}
	stop()
	// Every goroutine of the node, mirror, VIP and heartbeats is joined.
	http.DefaultClient.CloseIdleConnections()
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > before && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond)
	}
	if n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after stop, %d before start:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestNotInCluster: the pair's endpoints say so on an appliance alone.
func TestNotInCluster(t *testing.T) {
	addr, _ := startApp(t, Options{DataDir: formatStore(t, 64<<20), APITokens: map[string]string{"tok": "test"}})
	c := client{t: t, base: "http://" + addr, token: "tok"}
	if code, _, body := c.get("/api/v1/cluster"); code != 404 || !strings.Contains(string(body), "not in a cluster") {
		t.Errorf("cluster alone: %d %s", code, body)
	}
}

func postCode(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
