package board_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nvrfw/nvr/board"
	"github.com/nvrfw/nvr/board/mdraid"
	"github.com/nvrfw/nvr/board/pmbus"
)

func TestStatusJSONUsesNames(t *testing.T) {
	st := board.Status{
		PSUs:   []board.PSUStatus{{Name: "PSU1", Reading: pmbus.Reading{Conditions: []pmbus.Condition{{Name: "OT_FAULT", Severity: pmbus.Fault}}}}},
		Arrays: []board.ArrayStatus{{Name: "md0", Health: mdraid.Rebuilding}},
		Events: []board.Event{{Seq: 1, Kind: board.PSULost, Source: "PSU1"}},
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Severity":"fault"`, `"Health":"rebuilding"`, `"Kind":"psu-lost"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	for k := board.PSULost; k <= board.WatchdogReset; k++ {
		if strings.HasPrefix(k.String(), "event(") {
			t.Errorf("kind %d has no name", k)
		}
	}
}
