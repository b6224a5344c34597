package cluster

import (
	"testing"

	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
)

func TestChoosePath(t *testing.T) {
	paths := []heartbeat.Path{{Name: "dedicated"}, {Name: "lan"}}
	ps := func(upD bool, lossD float64, upL bool, lossL float64) heartbeat.Status {
		return heartbeat.Status{Paths: []heartbeat.PathStatus{{Name: "dedicated", Up: upD, Loss: lossD}, {Name: "lan", Up: upL, Loss: lossL}}}
	}
	tests := []struct {
		name string
		st   heartbeat.Status
		want string // "" for none
	}{
		{"both clean: dedicated first", ps(true, 0, true, 0), "dedicated"},
		{"dedicated down", ps(false, 0, true, 0.01), "lan"},
		{"dedicated lossy, lan clean", ps(true, 0.5, true, 0.01), "lan"},
		{"dedicated a little lossy", ps(true, 0.1, true, 0), "dedicated"},
		{"both lossy: the better", ps(true, 0.5, true, 0.3), "lan"},
		{"lossy dedicated alone", ps(true, 0.5, false, 0), "dedicated"},
		{"none up", ps(false, 0, false, 0), ""},
		{"no status yet", heartbeat.Status{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := choosePath(paths, tc.st)
			if ok != (tc.want != "") || p.Name != tc.want {
				t.Fatalf("choosePath = %q, %v; want %q", p.Name, ok, tc.want)
			}
		})
	}
}
