package events

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestHistoryAndAlarms(t *testing.T) {
	h := New(Options{History: 3})
	h.Publish(Event{Kind: "psu.lost", Severity: Critical, Source: "psu1", Alarm: "psu1.input"})
	h.Publish(Event{Kind: "bay.removed", Severity: Warning, Source: "bay2", Alarm: "bay2.present"})
	h.Publish(Event{Kind: "camera.recording", Source: "cam1"})
	h.Publish(Event{Kind: "psu.restored", Source: "psu1", ClearAlarm: "psu1.input"})

	recent := h.Recent(10)
	if len(recent) != 3 {
		t.Fatalf("history holds %d, want 3 (bounded)", len(recent))
	}
	want := []string{"psu.restored", "camera.recording", "bay.removed"}
	for i, ev := range recent {
		if ev.Kind != want[i] {
			t.Errorf("recent[%d] = %s, want %s (newest first)", i, ev.Kind, want[i])
		}
	}
	if recent[0].ID <= recent[1].ID {
		t.Errorf("IDs not increasing: %d then %d", recent[1].ID, recent[0].ID)
	}
	alarms := h.Alarms()
	if len(alarms) != 1 || alarms[0].Key != "bay2.present" {
		t.Fatalf("alarms = %+v, want only bay2.present", alarms)
	}
	if got := h.Recent(1); len(got) != 1 || got[0].Kind != "psu.restored" {
		t.Errorf("Recent(1) = %+v", got)
	}
}

func TestAlarmOrder(t *testing.T) {
	h := New(Options{})
	h.Publish(Event{Severity: Warning, Alarm: "w1"})
	h.Publish(Event{Severity: Critical, Alarm: "c1"})
	h.Publish(Event{Severity: Warning, Alarm: "w2"})
	var keys []string
	for _, a := range h.Alarms() {
		keys = append(keys, a.Key)
	}
	if fmt.Sprint(keys) != "[c1 w1 w2]" {
		t.Errorf("alarm order %v, want critical first then oldest", keys)
	}
}

func TestSubscribersGetEventsInOrderAndSlowOnesDropOldest(t *testing.T) {
	h := New(Options{SubscriberBuffer: 4})
	ctx, cancel := context.WithCancel(context.Background())
	fast := h.Subscribe(ctx)
	slow := h.Subscribe(ctx)

	for i := 0; i < 3; i++ {
		h.Publish(Event{Kind: fmt.Sprintf("e%d", i)})
	}
	for i := 0; i < 3; i++ {
		select {
		case ev := <-fast:
			if ev.Kind != fmt.Sprintf("e%d", i) {
				t.Fatalf("fast got %s, want e%d", ev.Kind, i)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("fast subscriber got nothing")
		}
	}
	// The slow subscriber's forwarding goroutine may hold one event; beyond
	// buffer+1 the oldest are dropped and a drop notice follows.
	for i := 3; i < 40; i++ {
		h.Publish(Event{Kind: fmt.Sprintf("e%d", i)})
	}
	var got []string
	deadline := time.After(2 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "e39" {
		select {
		case ev := <-slow:
			got = append(got, ev.Kind)
		case <-deadline:
			t.Fatalf("slow subscriber got only %v", got)
		}
	}
	if len(got) > 4+2 {
		t.Errorf("slow subscriber got %d events %v: its queue is not bounded", len(got), got)
	}
	sawDrop, sawLast := false, false
	for _, k := range got {
		sawDrop = sawDrop || k == "events.dropped"
		sawLast = sawLast || k == "e39"
	}
	if !sawDrop || !sawLast {
		t.Errorf("slow subscriber saw %v: want a drop notice and the newest event", got)
	}
	cancel()
	for range fast {
	}
	for range slow {
	}
	h.mu.Lock()
	n := len(h.subs)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscribers left after cancel", n)
	}
}
