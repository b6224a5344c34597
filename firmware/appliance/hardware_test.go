package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/mdraid/mdraidtest"
	"github.com/nvrfw/nvr/board/pmbus"
	"github.com/nvrfw/nvr/board/pmbus/pmbustest"
	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
	"github.com/nvrfw/nvr/ringstore/vfs"
	"github.com/nvrfw/nvr/ringstore/vfs/faultfs"
	"github.com/nvrfw/nvr/watchdog"
	"github.com/nvrfw/nvr/watchdog/watchdogtest"
)

// rig is an appliance recording one simulated camera, with its API client.
type rig struct {
	t     *testing.T
	sim   *camsim.Simulator
	data  string
	api   client
	stop  func()
	start time.Time
}

func startRig(t *testing.T, opts Options) *rig {
	t.Helper()
	r := startRigNoWait(t, opts)
	waitUntil(t, "cam1 recording", 20*time.Second, func() bool {
		var c api.Camera
		code, _, body := r.api.get("/api/v1/cameras/cam1")
		return code == 200 && json.Unmarshal(body, &c) == nil && c.State == "recording"
	})
	r.start = time.Now()
	return r
}

// startRigNoWait starts the appliance recording a simulated "cam1" (unless
// opts names its own cameras) without waiting for it to record.
func startRigNoWait(t *testing.T, opts Options) *rig {
	t.Helper()
	data := formatStore(t, 32<<20)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"cam1": {Video: camsim.H264}})
	opts.DataDir = data
	opts.APITokens = map[string]string{"tok": "test"}
	if opts.Cameras == nil {
		opts.Cameras = []recorder.Camera{{Name: "cam1", URL: "rtsp://" + sim.Addr() + "/cam1"}}
	}
	addr, stop := startApp(t, opts)
	r := &rig{t: t, sim: sim, data: data, stop: stop, api: client{t: t, base: "http://" + addr, token: "tok"}}
	return r
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sseEvents collects the API's event stream from now on.
type sseEvents struct {
	mu   sync.Mutex
	evs  []api.Event
	stop func()
}

func subscribe(t *testing.T, c client) *sseEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &sseEvents{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev api.Event
			if json.Unmarshal([]byte(data), &ev) == nil {
				s.mu.Lock()
				s.evs = append(s.evs, ev)
				s.mu.Unlock()
			}
		}
	}()
	s.stop = func() { cancel(); resp.Body.Close(); <-done }
	t.Cleanup(s.stop)
	return s
}

// board returns "kind source" of the board events received, in order.
func (s *sseEvents) board() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.evs {
		if strings.HasPrefix(ev.Kind, "board.") {
			out = append(out, ev.Kind+" "+ev.Source)
		}
	}
	return out
}

// framesKept compares what the simulator sent in [from, to) with what the
// store holds for the same range: it returns both counts.
func (r *rig) framesKept(from, to time.Time) (sent, kept int) {
	r.t.Helper()
	st, err := ringstore.Open(context.Background(), r.data, ringstore.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	return r.framesKeptIn(st, "cam1", from, to)
}

// framesKeptIn compares one camera's sent and stored frames in [from, to).
func (r *rig) framesKeptIn(st *ringstore.Store, cam string, from, to time.Time) (sent, kept int) {
	r.t.Helper()
	frames, err := r.sim.SentFrames(cam, from, to)
	if err != nil {
		r.t.Fatal(err)
	}
	rd, err := st.Frames(cam, from.Add(-5*time.Second), to.Add(5*time.Second))
	if err != nil {
		r.t.Fatal(err)
	}
	defer rd.Close()
	// Frame times in the store are anchored to the wall clock by sender
	// reports, so they sit at a small constant offset from the simulator's
	// capture times: remove the median offset, then match each sent frame to
	// the nearest stored one within a quarter frame.
	var stored []time.Time
	for {
		f, err := rd.Next()
		if err != nil {
			break
		}
		if f.Track == 0 {
			stored = append(stored, f.Time)
		}
	}
	nearest := func(t time.Time) time.Duration {
		i := sort.Search(len(stored), func(i int) bool { return !stored[i].Before(t) })
		best := time.Duration(math.MaxInt64)
		for _, j := range []int{i - 1, i} {
			if j >= 0 && j < len(stored) {
				if d := stored[j].Sub(t); d.Abs() < best.Abs() {
					best = d
				}
			}
		}
		return best
	}
	// The recorder anchors a camera's clock at its first packet and then
	// slews toward the sender reports' wall time (about 1 %), so the offset
	// moves slowly: follow it frame by frame, and count a sent frame as kept
	// when a stored frame sits within 10 ms of where it is predicted.
	if len(frames) == 0 {
		return 0, 0
	}
	offset := nearest(frames[0].Time)
	for _, sf := range frames {
		d := nearest(sf.Time.Add(offset))
		if d.Abs() <= 10*time.Millisecond {
			kept++
			offset += d
		}
	}
	if testing.Verbose() {
		r.t.Logf("%s: store times end %v from the simulator's capture times (recorder clock slew)", cam, offset)
	}
	return len(frames), kept
}

// TestHardwareEventsNeverInterruptRecording pulls a drive and puts it back
// and makes a PSU fail and recover while a camera records: every event is
// raised once, in order, with its alarm raised and cleared, and not one
// frame is lost.
func TestHardwareEventsNeverInterruptRecording(t *testing.T) {
	psus := []*pmbustest.PSU{pmbustest.NewHealthy(), pmbustest.NewHealthy()}
	pins := []*gpiotest.Pin{
		{N: "present0", L: gpio.Low, EdgesChan: make(chan gpio.Level, 16)},
		{N: "present1", L: gpio.Low, EdgesChan: make(chan gpio.Level, 16)},
	}
	sys := mdraidtest.NewSysfs()
	sys.Set(mdraidtest.Mirror("md0", "clean", 0, 0))
	mo := &board.MonitorOptions{
		PSUs:   []board.PSU{{Name: "PSU1", Bus: psus[0]}, {Name: "PSU2", Bus: psus[1]}},
		Bays:   []board.Bay{{Name: "BAY0", Present: pins[0]}, {Name: "BAY1", Present: pins[1]}},
		Arrays: []string{"md0"}, Recording: "md0", Sysfs: sys,
		PollInterval: 20 * time.Millisecond, EdgeWait: 20 * time.Millisecond,
	}
	r := startRig(t, Options{test: testHooks{board: mo}})
	evs := subscribe(t, r.api)
	time.Sleep(time.Second)

	pins[0].EdgesChan <- gpio.High // BAY0's drive pulled
	waitUntil(t, "bay removed", 5*time.Second, func() bool { return len(evs.board()) >= 1 })
	var st api.Status
	r.api.getJSON("/api/v1/status", &st)
	if !hasAlarm(st, "BAY0") || st.Board == nil || st.Board.Bays[0].Present {
		t.Errorf("after the pull: alarms %+v, board %+v", st.Alarms, st.Board)
	}
	time.Sleep(time.Second)
	pins[0].EdgesChan <- gpio.Low // and put back
	waitUntil(t, "bay inserted", 5*time.Second, func() bool { return len(evs.board()) >= 2 })
	time.Sleep(time.Second)
	psus[1].SetByte(pmbus.CmdStatusInput, 0x18)
	psus[1].SetWord(pmbus.CmdStatusWord, 0x2848) // input undervoltage
	waitUntil(t, "PSU fault", 5*time.Second, func() bool { return len(evs.board()) >= 3 })
	time.Sleep(time.Second)
	psus[1].SetWord(pmbus.CmdStatusWord, 0)
	psus[1].SetByte(pmbus.CmdStatusInput, 0)
	waitUntil(t, "PSU fault cleared", 5*time.Second, func() bool { return len(evs.board()) >= 4 })
	time.Sleep(time.Second)
	arr := mdraidtest.Mirror("md0", "clean", 0, 0)
	arr.Members[1].ReadErrors = 4 // sdc starts failing reads that md corrects
	sys.Set(arr)
	waitUntil(t, "drive errors", 5*time.Second, func() bool { return len(evs.board()) >= 5 })
	time.Sleep(2 * time.Second)

	want := []string{"board.bay-removed BAY0", "board.bay-inserted BAY0", "board.psu-faulted PSU2", "board.psu-fault-cleared PSU2",
		"board.drive-errors md0"}
	if got := evs.board(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("board events %q, want each once, in order: %q", got, want)
	}
	r.api.getJSON("/api/v1/status", &st)
	if st.Board == nil || len(st.Board.Arrays) != 1 || len(st.Board.Arrays[0].Members) != 2 ||
		st.Board.Arrays[0].Members[1].Device != "sdc" || st.Board.Arrays[0].Members[1].ReadErrors != 4 {
		t.Errorf("array members in the status: %+v", st.Board)
	}
	for _, al := range st.Alarms {
		if strings.HasPrefix(al.Source, "BAY") || strings.HasPrefix(al.Source, "PSU") {
			t.Errorf("alarm still active after recovery: %+v", al)
		}
	}
	end := time.Now().Add(-2 * time.Second)
	r.stop()
	sent, kept := r.framesKept(r.start, end)
	t.Logf("frames sent %d, kept %d over %s of hardware events", sent, kept, end.Sub(r.start).Round(time.Second))
	if sent < 100 || kept != sent {
		t.Errorf("frames sent %d, kept %d: recording lost frames during hardware events", sent, kept)
	}
}

func hasAlarm(st api.Status, source string) bool {
	for _, al := range st.Alarms {
		if al.Source == source {
			return true
		}
	}
	return false
}

// TestWatchdogStopsPettingWhileTheStoreHangs hangs the store's fdatasync
// (a dying disk): health fails once no commit completes within its bound, the
// watchdog is no longer petted within one period (so real hardware would
// reset the box), and petting resumes when the disk answers again.
func TestWatchdogStopsPettingWhileTheStoreHangs(t *testing.T) {
	ffs := faultfs.New(vfs.Default)
	dog := watchdogtest.NewDog(3*time.Second, false, nil)
	wo := &watchdog.Options{Device: dog, Timeout: 3 * time.Second, Interval: 200 * time.Millisecond, BootGrace: -1}
	r := startRig(t, Options{CommitInterval: 100 * time.Millisecond, CommitStallAfter: time.Second,
		test: testHooks{fs: ffs, watchdog: wo}})
	waitUntil(t, "petting", 5*time.Second, func() bool { return dog.Pets() > 3 })

	ffs.Hang(faultfs.Kinds(faultfs.OpDatasync))
	hungAt := time.Now()
	// Health fails after CommitStallAfter (1s); petting must stop within one
	// further period (200ms); allow scheduling slack on a loaded machine.
	time.Sleep(time.Second + 600*time.Millisecond)
	before := dog.Pets()
	time.Sleep(2 * time.Second)
	if after := dog.Pets(); after != before {
		t.Fatalf("watchdog petted %d times while the store hung in fdatasync", after-before)
	}
	last := dog.LastPet()
	t.Logf("last pet %v after the hang began", last.Sub(hungAt).Round(time.Millisecond))
	if last.Sub(hungAt) > time.Second+400*time.Millisecond {
		t.Errorf("petting went on %v into the hang (bound 1s + one 200ms period)", last.Sub(hungAt))
	}
	ffs.Release()
	waitUntil(t, "petting resumed", 5*time.Second, func() bool { return dog.Pets() > before })
	var st api.Status
	r.api.getJSON("/api/v1/status", &st)
	if !st.Healthy {
		t.Errorf("not healthy after the disk answered again: %v", st.Problems)
	}
}
