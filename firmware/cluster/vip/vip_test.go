package vip

import (
	"errors"
	"net/netip"
	"testing"
)

// The netlink, ARP and lease paths run in the namespace rig
// (firmware/cluster failover tests); these cover what needs no kernel.

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"ok", Options{Link: "lan0", Addr: netip.MustParseAddr("10.0.0.100")}, true},
		{"no link", Options{Addr: netip.MustParseAddr("10.0.0.100")}, false},
		{"no addr", Options{Link: "lan0"}, false},
	}
	for _, tc := range tests {
		m, err := New(tc.opts, nil)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err == nil && (m.opts.Announce != 3 || m.opts.Loopback != "lo" || m.opts.ProcSys != "/proc/sys") {
			t.Errorf("%s: defaults not applied: %+v", tc.name, m.opts)
		}
	}
}

func TestClaimFromOldEpochRefused(t *testing.T) {
	var got []Event
	m, err := New(Options{Link: "lan0", Addr: netip.MustParseAddr("10.0.0.100")}, func(e Event) { got = append(got, e) })
	if err != nil {
		t.Fatal(err)
	}
	m.epoch = 9 // as after a claim at epoch 9
	err = m.Claim(8, nil)
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("claim at epoch 8 after 9: %v", err)
	}
	if m.Held() || len(got) != 1 || got[0].What != "refuse" || got[0].Epoch != 8 {
		t.Fatalf("refused claim changed state or was not reported: held=%v events=%+v", m.Held(), got)
	}
}

func TestAnsweringFollowsLease(t *testing.T) {
	m, _ := New(Options{Link: "lan0", Addr: netip.MustParseAddr("10.0.0.100")}, nil)
	fresh := true
	m.held, m.lease, m.pending = true, func() bool { return fresh }, 1
	if !m.answering() {
		t.Fatal("held with a fresh lease but not answering")
	}
	fresh = false
	if m.answering() || m.takeAnnounce() {
		t.Fatal("answering or announcing with a stale lease")
	}
	fresh = true
	if !m.takeAnnounce() || m.takeAnnounce() {
		t.Fatal("announcement count not honoured")
	}
}
