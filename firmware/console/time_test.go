package console

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/timesync"
)

// syncSystem is a fake system that runs an NTP client.
type syncSystem struct {
	*fakeSystem
	st timesync.Status
}

func (s *syncSystem) TimeSync() (timesync.Status, bool) { return s.st, true }

func TestTimeShowSync(t *testing.T) {
	e := newCmdEnv(t)
	sys := &syncSystem{fakeSystem: e.sys}
	e.c.opts.System = sys
	e.exec(t, "root", "time set --ntp 192.0.2.1,ntp.example.net")

	sys.st = timesync.Status{Servers: []string{"192.0.2.1"}, LastAttempt: time.Now(), LastError: "192.0.2.1: no answer: i/o timeout"}
	if out := e.exec(t, "eve", "time show"); !strings.Contains(out, "sync: NOT synchronised (last answer: never): 192.0.2.1: no answer") {
		t.Errorf("unsynchronised clock shown as:\n%s", out)
	}
	sys.st = timesync.Status{Servers: []string{"192.0.2.1"}, Synced: true, Server: "192.0.2.1", Stratum: 2,
		Offset: 1500 * time.Microsecond, Delay: 300 * time.Microsecond, Adjusting: "slew", LastSync: time.Now(), LastAttempt: time.Now()}
	out := e.exec(t, "eve", "time show")
	if !strings.Contains(out, "sync: synchronised with 192.0.2.1 (stratum 2), offset 1.5ms, delay 300µs, slew") {
		t.Errorf("synchronised clock shown as:\n%s", out)
	}
	var v timeView
	if err := json.Unmarshal([]byte(e.exec(t, "eve", "time show --json")), &v); err != nil || v.Sync == nil || !v.Sync.Synced || v.Sync.Server != "192.0.2.1" {
		t.Errorf("time show --json: %+v %v", v, err)
	}
}
