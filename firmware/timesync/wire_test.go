package timesync

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func reply(cookie uint64, mod func(b []byte)) []byte {
	b := make([]byte, PacketSize)
	b[0] = 0<<6 | 4<<3 | 4
	b[1] = 1
	copy(b[12:], "GPS\x00")
	binary.BigEndian.PutUint64(b[24:], cookie)
	rx := time.Date(2026, 11, 25, 12, 0, 0, 500_000_000, time.UTC)
	binary.BigEndian.PutUint64(b[32:], toTimestamp(rx))
	binary.BigEndian.PutUint64(b[40:], toTimestamp(rx.Add(time.Millisecond)))
	if mod != nil {
		mod(b)
	}
	return b
}

func TestParse(t *testing.T) {
	const cookie = 0x0123456789abcdef
	r, err := Parse(reply(cookie, nil), cookie)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 25, 12, 0, 0, 500_000_000, time.UTC)
	if d := r.Receive.Sub(want); d < -time.Microsecond || d > time.Microsecond || r.Stratum != 1 || r.Version != 4 {
		t.Fatalf("parsed %+v", r)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", reply(cookie, nil)[:47], ErrMalformed},
		{"client mode", reply(cookie, func(b []byte) { b[0] = 4<<3 | 3 }), ErrMalformed},
		{"version 2", reply(cookie, func(b []byte) { b[0] = 2<<3 | 4 }), ErrMalformed},
		{"other origin", reply(cookie+1, nil), ErrNotOurs},
		{"kiss of death", reply(cookie, func(b []byte) { b[1] = 0; copy(b[12:], "DENY") }), ErrKissOfDeath},
		{"leap 3", reply(cookie, func(b []byte) { b[0] |= 3 << 6 }), ErrUnsynchronised},
		{"stratum 16", reply(cookie, func(b []byte) { b[1] = 16 }), ErrUnsynchronised},
		{"root distance 2 s", reply(cookie, func(b []byte) { binary.BigEndian.PutUint32(b[8:], 2<<16) }), ErrUnsynchronised},
		{"no transmit time", reply(cookie, func(b []byte) { binary.BigEndian.PutUint64(b[40:], 0) }), ErrMalformed},
		{"sent before received", reply(cookie, func(b []byte) {
			binary.BigEndian.PutUint64(b[40:], binary.BigEndian.Uint64(b[32:])-1<<32)
		}), ErrMalformed},
	} {
		if _, err := Parse(c.b, cookie); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTimestampEras(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 25, 1, 2, 3, 999_999_000, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), // era 1 starts
		time.Date(2090, 6, 1, 0, 0, 0, 250_000_000, time.UTC),
	} {
		got := timestamp(toTimestamp(tm))
		if d := got.Sub(tm); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%v read back as %v", tm, got)
		}
	}
}

func TestRequest(t *testing.T) {
	b := Request(42)
	if len(b) != PacketSize || b[0] != 0x23 || binary.BigEndian.Uint64(b[40:]) != 42 {
		t.Fatalf("request % x", b)
	}
}

// FuzzParse: whatever a network peer sends, Parse returns a reply or an
// error, never panics, and an accepted reply has sane fields.
func FuzzParse(f *testing.F) {
	f.Add(reply(7, nil), uint64(7))
	f.Add(reply(7, func(b []byte) { b[1] = 0 }), uint64(7))
	f.Add(make([]byte, PacketSize), uint64(0))
	f.Add(append(reply(9, nil), make([]byte, 20)...), uint64(9))
	f.Fuzz(func(t *testing.T, b []byte, cookie uint64) {
		r, err := Parse(b, cookie)
		if err != nil {
			return
		}
		if r.Stratum == 0 || r.Stratum >= 16 || r.Leap == 3 || r.Transmit.Before(r.Receive) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
