package appliance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"testing"
	"time"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/recorder"
)

// trialSlots makes a boot directory with slot a confirmed (1.0.0) and slot b
// installed (1.1.0) and armed for its one trial boot, then powers on: the
// bootloader (slots.Boot, the rule grub.cfg implements) clears the trial flag
// and boots b.
func trialSlots(t *testing.T) *slots.Manager {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(version string) *bundle.Bundle {
		src := func(name string) bundle.Source {
			data := []byte(name + " of " + version)
			return bundle.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
		}
		var buf bytes.Buffer
		if _, err := bundle.Pack(&buf, key, bundle.Manifest{Version: version, Boards: []string{"qemu"}},
			[]bundle.Source{src(bundle.PartKernel), src(bundle.PartInitramfs)}); err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), bundle.Options{Keys: []ed25519.PublicKey{pub}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m, err := slots.New(slots.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Provision(context.Background(), mk("1.0.0"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Install(context.Background(), mk("1.1.0"), slots.A, nil); err != nil {
		t.Fatal(err)
	}
	if booted, _, err := m.Boot(); err != nil || booted != slots.B {
		t.Fatalf("power-on booted %q (%v), want the trial slot b", booted, err)
	}
	return m
}

// TestTrialBootConfirmedOnlyWhenHealthy: booted on trial slot b, the
// appliance does not confirm while a camera cannot record, and confirms once
// every camera has recorded healthily for ConfirmAfter.
func TestTrialBootConfirmedOnlyWhenHealthy(t *testing.T) {
	m := trialSlots(t)
	st, err := m.Status(slots.B)
	if err != nil || st.Trial != "" || st.Default != slots.A {
		t.Fatalf("set-up: after the trial boot began, want no trial flag and default a: %+v %v", st, err)
	}
	// A camera that never answers: recording is not healthy, no confirm.
	r := startRigNoWait(t, Options{Firmware: &Firmware{Slots: m, Booted: slots.B, ConfirmAfter: time.Second},
		Cameras: []recorder.Camera{{Name: "dead", URL: "rtsp://127.0.0.1:1/none"}}})
	time.Sleep(4 * time.Second)
	if st, _ := m.Status(slots.B); st.Default != slots.A {
		t.Fatalf("confirmed while camera 'dead' could not record: %+v", st)
	}
	var status struct {
		Alarms []struct{ Source, Message string } `json:"alarms"`
	}
	r.api.getJSON("/api/v1/status", &status)
	found := false
	for _, al := range status.Alarms {
		found = found || al.Source == "firmware"
	}
	if !found {
		t.Errorf("no trial-boot alarm while unconfirmed: %+v", status.Alarms)
	}
	r.stop()

	// A camera that records: confirmed after a second of health.
	startRig(t, Options{Firmware: &Firmware{Slots: m, Booted: slots.B, ConfirmAfter: time.Second}})
	waitUntil(t, "slot b confirmed", 15*time.Second, func() bool {
		st, err := m.Status(slots.B)
		return err == nil && st.Default == slots.B && st.Trial == ""
	})
	// The next power-on boots b: it is the default now.
	if booted, _, err := m.Boot(); err != nil || booted != slots.B {
		t.Errorf("after confirmation power-on booted %q (%v), want b", booted, err)
	}
}
