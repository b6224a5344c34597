package cli

import (
	"runtime/debug"
	"testing"
)

// nvrd run collects at half the live heap unless the operator set GOGC.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	if got := tuneGC("200"); got != 0 {
		t.Errorf("with GOGC set, tuneGC set %d", got)
	}
	if cur := debug.SetGCPercent(100); cur != 100 {
		t.Errorf("with GOGC set, the target changed to %d", cur)
	}
	if got := tuneGC(""); got != runGCPercent {
		t.Errorf("tuneGC set %d, want %d", got, runGCPercent)
	}
	if cur := debug.SetGCPercent(100); cur != runGCPercent {
		t.Errorf("GC target is %d, want %d", cur, runGCPercent)
	}
}
