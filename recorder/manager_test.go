package recorder_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/recorder/camsim"
	"github.com/nvrfw/nvr/ringstore"
)

// fakeWriters hands out one fakeWriter per camera name.
type fakeWriters struct {
	mu   sync.Mutex
	m    map[string]*fakeWriter
	fail error
}

func (f *fakeWriters) writer(name string) (recorder.FrameWriter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	if f.m == nil {
		f.m = map[string]*fakeWriter{}
	}
	if _, ok := f.m[name]; !ok {
		f.m[name] = newFakeWriter()
	}
	return f.m[name], nil
}

func (f *fakeWriters) get(name string) *fakeWriter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[name]
}

func TestManager(t *testing.T) {
	checkLeaks(t)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"p1": {}, "p2": {Video: camsim.H265}, "p3": {}})
	ws := &fakeWriters{}
	m, err := recorder.NewManager(recorder.ManagerOptions{Writer: ws.writer, Session: testOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	recording := func(name string) func() bool {
		return func() bool {
			s, ok := m.Status(name)
			return ok && s.State == recorder.StateRecording && s.FramesRecorded > 10
		}
	}

	// Errors callers act on.
	errTests := []struct {
		name string
		do   func() error
		want error
	}{
		{"invalid name", func() error { return m.Add(recorder.Camera{Name: "a b", URL: sim.URL("p1")}) }, recorder.ErrInvalidCamera},
		{"invalid scheme", func() error { return m.Add(recorder.Camera{Name: "x", URL: "http://h/p"}) }, recorder.ErrInvalidCamera},
		{"invalid transport", func() error {
			return m.Add(recorder.Camera{Name: "x", URL: sim.URL("p1"), Transport: "sctp"})
		}, recorder.ErrInvalidCamera},
		{"update unknown", func() error { return m.Update(recorder.Camera{Name: "nope", URL: sim.URL("p1")}) }, recorder.ErrUnknownCamera},
		{"remove unknown", func() error { return m.Remove("nope") }, recorder.ErrUnknownCamera},
	}
	for _, tc := range errTests {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Two cameras and one that refuses connections: the dead one does not
	// hold up the others.
	for _, c := range []recorder.Camera{
		{Name: "a", URL: sim.URL("p1")},
		{Name: "b", URL: sim.URL("p2"), Transport: recorder.TransportUDP},
		{Name: "dead", URL: "rtsp://admin:pw@127.0.0.1:1/none"},
	} {
		if err := m.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Add(recorder.Camera{Name: "a", URL: sim.URL("p1")}); !errors.Is(err, recorder.ErrCameraExists) {
		t.Errorf("second Add: %v", err)
	}
	waitFor(t, 15*time.Second, "a recording", recording("a"))
	waitFor(t, 15*time.Second, "b recording", recording("b"))
	waitFor(t, 5*time.Second, "dead in backoff", func() bool {
		s, _ := m.Status("dead")
		return s.State == recorder.StateBackoff && s.LastError != "" && s.Reconnects > 0
	})
	sts := m.Statuses()
	if len(sts) != 3 || sts[0].Name != "a" || sts[1].Name != "b" || sts[2].Name != "dead" {
		t.Fatalf("statuses %v", names(sts))
	}
	if sts[2].URL != "rtsp://admin:xxxxx@127.0.0.1:1/none" {
		t.Errorf("status URL %q, want the password redacted", sts[2].URL)
	}

	// Update with the same configuration keeps the session; a new URL
	// restarts it on the new path.
	if err := m.Update(recorder.Camera{Name: "a", URL: sim.URL("p1")}); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Status("a"); s.Connects != 1 {
		t.Errorf("identical Update restarted the session (connects %d)", s.Connects)
	}
	if err := m.Update(recorder.Camera{Name: "a", URL: sim.URL("p3")}); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Status("a"); s.URL != sim.URL("p3") || s.FramesRecorded != 0 {
		t.Errorf("after Update: URL %s frames %d", s.URL, s.FramesRecorded)
	}
	waitFor(t, 15*time.Second, "a recording from p3", recording("a"))
	if n := ws.get("a").gapCount(ringstore.GapCameraOffline); n != 1 {
		t.Errorf("Update marked %d camera-offline gaps, want 1", n)
	}

	// Remove stops the session: its writer gets nothing more.
	if err := m.Remove("b"); err != nil {
		t.Fatal(err)
	}
	n := ws.get("b").count()
	time.Sleep(300 * time.Millisecond)
	if got := ws.get("b").count(); got != n {
		t.Errorf("removed camera appended %d frames", got-n)
	}

	// Set reconciles: a stays, dead goes, c comes.
	if err := m.Set([]recorder.Camera{{Name: "a", URL: sim.URL("p3")}, {Name: "c", URL: sim.URL("p2")}}); err != nil {
		t.Fatal(err)
	}
	if got := names(m.Statuses()); fmt.Sprint(got) != "[a c]" {
		t.Fatalf("after Set: %v", got)
	}
	waitFor(t, 15*time.Second, "c recording", recording("c"))
	if s, _ := m.Status("a"); s.Connects != 1 {
		t.Errorf("Set restarted an unchanged camera")
	}

	ws.mu.Lock()
	ws.fail = errors.New("disk gone")
	ws.mu.Unlock()
	if err := m.Add(recorder.Camera{Name: "d", URL: sim.URL("p1")}); err == nil {
		t.Error("Add succeeded although the store refused the stream")
	}

	for _, name := range []string{"a", "b", "c"} {
		ws.get(name).checkProblems(t)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.Add(recorder.Camera{Name: "e", URL: sim.URL("p1")}); !errors.Is(err, recorder.ErrManagerClosed) {
		t.Errorf("Add after Close: %v", err)
	}
}

// TestManagerRestartsPanickingSession makes a session panic outside its
// connection (in MarkGap) and checks the manager restarts it.
func TestManagerRestartsPanickingSession(t *testing.T) {
	checkLeaks(t)
	sim := startSim(t, camsim.Options{}, map[string]camsim.PathConfig{"p1": {}, "p2": {}})
	ws := &fakeWriters{}
	m, err := recorder.NewManager(recorder.ManagerOptions{Writer: ws.writer, Session: testOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, c := range []recorder.Camera{{Name: "a", URL: sim.URL("p1")}, {Name: "b", URL: sim.URL("p2")}} {
		if err := m.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "recording", func() bool {
		return ws.get("a") != nil && ws.get("a").count() > 20 && ws.get("b") != nil && ws.get("b").count() > 20
	})
	w := ws.get("a")
	w.mu.Lock()
	w.panicGap = true
	w.mu.Unlock()
	if err := sim.Fault("p1", camsim.Fault{Kind: camsim.FaultDrop}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a restarted and recording", func() bool {
		s, _ := m.Status("a")
		return s.Panics == 1 && s.State == recorder.StateRecording && s.Connects >= 2
	})
	nb := ws.get("b").count()
	waitFor(t, 5*time.Second, "b unaffected", func() bool { return ws.get("b").count() > nb+10 })
	w.checkProblems(t)
}

func names(sts []recorder.Status) []string {
	var out []string
	for _, s := range sts {
		out = append(out, s.Name)
	}
	return out
}
