package clip

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// FuzzInbandParams feeds arbitrary access units (outside bytes: whatever a
// camera sent) to the in-band parameter-set scan: it must never panic, and
// whatever it finds must be a NALU of the access unit.
func FuzzInbandParams(f *testing.F) {
	f.Add(uint8(ringstore.CodecH264), []byte{0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65})
	f.Add(uint8(ringstore.CodecH265), []byte{0, 0, 0, 2, 0x40, 0x01, 0, 0, 0, 2, 0x42, 0x01, 0, 0, 0, 2, 0x44, 0x01})
	f.Add(uint8(ringstore.CodecH264), []byte{0xff, 0xff, 0xff, 0xff, 0x67})
	f.Fuzz(func(t *testing.T, codec uint8, au []byte) {
		p, err := inbandParams(ringstore.Codec(codec), au)
		for _, n := range [][]byte{p.vps, p.sps, p.pps} {
			if n != nil && !bytes.Contains(au, n) {
				t.Fatalf("found %x, not in the access unit", n)
			}
		}
		if err == nil && p.complete(ringstore.Codec(codec)) {
			// Complete sets from a valid AU map to a codec or a clean error.
			_, _, _ = trackCodec(ringstore.Track{Codec: ringstore.Codec(codec)}, p)
		}
	})
}

// FuzzPatchHvc1 feeds arbitrary box trees to the header patch: it must never
// panic, and must change nothing but sample-entry types and completeness bits.
func FuzzPatchHvc1(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 'f', 't', 'y', 'p', 0, 0, 0, 8, 'm', 'd', 'a', 't'})
	f.Add([]byte{0, 0, 0, 16, 'm', 'o', 'o', 'v', 0, 0, 0, 8, 'h', 'e', 'v', '1', 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 'm', 'o', 'o', 'v', 0, 0, 0, 0, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		_ = patchHvc1(b)
		if len(b) != len(orig) {
			t.Fatal("length changed")
		}
	})
}

// FuzzPlan feeds arbitrary frame sequences (times, DTS offsets, key flags,
// sizes, gaps, track-table changes: what a damaged or odd store might return)
// through Prepare and Write: no panic, and a prepared clip is written with
// exactly its planned size, any range of it equal to the whole file's bytes.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{0x80, 40, 0, 10, 0x01, 20, 0, 4, 0x00, 40, 0, 10, 0x01, 20, 0, 4}, uint16(3))
	f.Add([]byte{0x81, 0, 0, 1, 0x80, 0, 0, 1, 0x40, 200, 5, 9, 0x20, 40, 0, 10}, uint16(0))
	f.Add([]byte{0x80, 255, 255, 255, 0x00, 255, 255, 255, 0x80, 1, 0, 0}, uint16(65535))
	tracks := []ringstore.Track{
		{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{benchSPS, benchPPS}},
		{ID: 1, Codec: ringstore.CodecAAC, ClockRate: 16000, Channels: 1, Config: [][]byte{{0x14, 0x08}}},
		{ID: 2, Codec: ringstore.CodecPCMU, ClockRate: 8000, Channels: 1},
	}
	f.Fuzz(func(t *testing.T, seq []byte, rangeOff uint16) {
		fuzzPlanBody(t, tracks, seq, rangeOff)
	})
}

// fuzzPlanBody is FuzzPlan's check of one input.
func fuzzPlanBody(t *testing.T, tracks []ringstore.Track, seq []byte, rangeOff uint16) {
	if len(seq) > 4*500 {
		seq = seq[:4*500]
	}
	// Each 4 bytes: flags (0x80 key, 0x40 gap before, 0x20 new table,
	// low 2 bits track), time step in ms, DTS offset in ms, size / 8.
	var es []fakeEntry
	last := map[uint8]time.Time{}
	now := t0
	for i := 0; i+4 <= len(seq); i += 4 {
		fl, step, off, size := seq[i], seq[i+1], seq[i+2], seq[i+3]
		track := fl & 3
		now = now.Add(time.Duration(step) * time.Millisecond)
		at := now
		if at.Before(last[track]) {
			at = last[track]
		}
		last[track] = at
		e := fakeEntry{frame: ringstore.Frame{Track: track, Time: at, Key: fl&0x80 != 0 || track != 0,
			DTSOffset: time.Duration(off) * time.Millisecond, Data: avccFrame(4+3+int(size)*8, fl&0x80 != 0, i)}}
		if i == 0 || fl&0x20 != 0 {
			e.tracks = tracks
			if fl&0x20 != 0 && i > 0 {
				e.tracks = append([]ringstore.Track(nil), tracks...)
				e.tracks[0].Config = [][]byte{benchSPS, append([]byte(nil), benchPPS[0], byte(i))}
			}
		}
		if fl&0x40 != 0 {
			e.gap = &ringstore.Gap{Start: at.Add(-time.Second), End: at, Cause: ringstore.GapStall}
		}
		es = append(es, e)
	}
	src := newFakeSource()
	src.streams["cam1"] = es
	ctx := context.Background()
	p, err := Prepare(ctx, src, Options{Stream: "cam1", From: t0.Add(time.Duration(rangeOff%2048) * time.Millisecond), To: now.Add(time.Millisecond)})
	if err != nil {
		return
	}
	var whole bytes.Buffer
	if n, err := p.Write(ctx, &whole); err != nil || n != p.Size() || int64(whole.Len()) != p.Size() {
		t.Fatalf("Write: %d bytes, %v; plan says %d", n, err, p.Size())
	}
	off := int64(rangeOff) % p.Size()
	n := min(p.Size()-off, 1000)
	var part bytes.Buffer
	if err := p.WriteRange(ctx, &part, off, n); err != nil || !bytes.Equal(part.Bytes(), whole.Bytes()[off:off+n]) {
		t.Fatalf("WriteRange(%d, %d): %v", off, n, err)
	}
}
