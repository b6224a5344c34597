package board_test

import (
	"strings"
	"testing"

	"github.com/nvrfw/nvr/board/mdraid/mdraidtest"
)

// TestMonitorDriveErrors: a member whose md-corrected read errors or SCSI
// I/O errors grow raises one drive-errors event per change, naming the
// drive; steady counters raise nothing.
func TestMonitorDriveErrors(t *testing.T) {
	b := newBench(t, nil)
	b.expect(t)
	a := mdraidtest.Mirror("md0", "clean", 0, 0)
	a.Members[1].ReadErrors = 3
	b.sys.Set(a)
	b.expect(t, "drive-errors md0")
	a.Members[1].IOErrors = 2
	a.Members[0].IOErrors = 1
	b.sys.Set(a)
	b.expect(t, "drive-errors md0", "drive-errors md0", "drive-errors md0")
	evs := b.events.events()
	for i, want := range []string{
		"drive sdc: 3 new read errors corrected by md (3 in all), 0 new I/O errors",
		"drive sdb: 0 new read errors corrected by md (0 in all), 1 new I/O errors (1 in all)",
		"drive sdc: 0 new read errors corrected by md (3 in all), 2 new I/O errors (2 in all)",
	} {
		if !strings.Contains(evs[i].Detail, want) {
			t.Errorf("event %d: %q, want it to say %q", i, evs[i].Detail, want)
		}
	}
	if m := b.m.Status().Arrays[0].Array.Members[1]; m.ReadErrors != 3 || m.IOErrors != 2 {
		t.Errorf("status member %+v", m)
	}
}
