package kmod

import (
	"errors"
	"strings"
	"testing"
)

const testDep = `kernel/drivers/md/raid456.ko: kernel/crypto/async_tx/async_raid6_recov.ko kernel/lib/raid6/raid6_pq.ko kernel/drivers/md/md-mod.ko
kernel/crypto/async_tx/async_raid6_recov.ko: kernel/lib/raid6/raid6_pq.ko
kernel/lib/raid6/raid6_pq.ko:
kernel/drivers/md/md-mod.ko:
kernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko
kernel/drivers/watchdog/softdog.ko:
`

func TestResolve(t *testing.T) {
	d, err := ParseDep(strings.NewReader(testDep))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  string
		err   error
	}{
		{[]string{"softdog"}, "kernel/drivers/watchdog/softdog.ko", nil},
		{[]string{"raid1"}, "kernel/drivers/md/md-mod.ko kernel/drivers/md/raid1.ko", nil},
		{[]string{"md_mod", "raid456", "raid1"}, "kernel/drivers/md/md-mod.ko kernel/lib/raid6/raid6_pq.ko kernel/crypto/async_tx/async_raid6_recov.ko kernel/drivers/md/raid456.ko kernel/drivers/md/raid1.ko", nil},
		{[]string{"virtio_pci"}, "", nil}, // built in
		{[]string{"nosuch"}, "", ErrUnknownModule},
	}
	for _, tt := range tests {
		got, err := d.Resolve(tt.names, map[string]bool{"virtio_pci": true})
		if !errors.Is(err, tt.err) || strings.Join(got, " ") != tt.want {
			t.Errorf("Resolve(%v) = %v, %v; want %q, %v", tt.names, got, err, tt.want, tt.err)
		}
	}
	sub := d.Subset([]string{"kernel/drivers/md/md-mod.ko", "kernel/drivers/md/raid1.ko"})
	if got := string(sub.Marshal()); got != "kernel/drivers/md/md-mod.ko:\nkernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko\n" {
		t.Fatalf("Marshal: %q", got)
	}
}

func TestResolveCycleAndDangling(t *testing.T) {
	d := Dep{"a.ko": {"b.ko"}, "b.ko": {"a.ko"}, "c.ko": {"missing.ko"}}
	if _, err := d.Resolve([]string{"a"}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("cycle: %v", err)
	}
	if _, err := d.Resolve([]string{"c"}, nil); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("dangling: %v", err)
	}
}

func TestParseDepRejects(t *testing.T) {
	for _, s := range []string{"no colon here.ko\n", "/abs/x.ko:\n", "../x.ko:\n", "a.ko: ../b.ko\n", "a.ko:\na.ko:\n"} {
		if _, err := ParseDep(strings.NewReader(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseDep(%q) = %v", s, err)
		}
	}
}

func TestParseModinfo(t *testing.T) {
	sec := []byte("license=GPL\x00depends=md-mod,raid6_pq\x00retpoline=Y\x00name=raid456\x00vermagic=6.1.0 SMP\x00\x00")
	name, deps, err := ParseModinfo(sec)
	if err != nil || name != "raid456" || strings.Join(deps, ",") != "md_mod,raid6_pq" {
		t.Fatalf("ParseModinfo = %q %v %v", name, deps, err)
	}
	if _, _, err := ParseModinfo([]byte("depends=\x00")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no name: %v", err)
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{"kernel/drivers/md/md-mod.ko": "md_mod", "x/i2c-dev.ko.xz": "i2c_dev", "igb.ko": "igb"} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q", in, got)
		}
	}
}

// FuzzParseDep: never panics; what parses re-marshals to the same Dep.
func FuzzParseDep(f *testing.F) {
	f.Add([]byte(testDep))
	f.Add([]byte("a.ko:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDep(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		back, err := ParseDep(strings.NewReader(string(d.Marshal())))
		if err != nil || len(back) != len(d) {
			t.Fatalf("round trip: %v %d vs %d", err, len(back), len(d))
		}
		for p := range d {
			if _, err := d.Resolve([]string{Name(p)}, nil); err != nil && !errors.Is(err, ErrUnknownModule) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Resolve: untyped error %v", err)
			}
		}
	})
}

// FuzzParseModinfo: never panics, and a name is always returned on success.
func FuzzParseModinfo(f *testing.F) {
	f.Add([]byte("license=GPL\x00depends=md-mod,raid6_pq\x00name=raid456\x00"))
	f.Add([]byte("name=x\x00depends=\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, _, err := ParseModinfo(b)
		if err == nil && name == "" {
			t.Fatal("accepted without a name")
		}
	})
}
