package ringstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

var replT0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// replStore formats and opens a small store in a temp dir.
func replStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Format(context.Background(), dir, FormatOptions{Size: 16 << 20, SlotSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return replOpen(t, dir), dir
}

func replOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{CommitInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var replTracks = []Track{
	{ID: 0, Codec: CodecH264, ClockRate: 90000, Config: [][]byte{{0x67, 0x42}, {0x68}}},
	{ID: 1, Codec: CodecAAC, ClockRate: 48000, Channels: 1, Config: [][]byte{{0x11}}},
}

// recordSecs appends [from, from+secs) of 10 fps video (key every second)
// and 10 fps audio, payloads tagged with tag, and returns the frames.
func recordSecs(t *testing.T, s *Store, stream string, tag byte, from time.Time, secs int) []Frame {
	t.Helper()
	return recordSecsTracks(t, s, stream, tag, from, secs, replTracks)
}

func recordSecsTracks(t *testing.T, s *Store, stream string, tag byte, from time.Time, secs int, tracks []Track) []Frame {
	t.Helper()
	w, err := s.Stream(stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(tracks); err != nil {
		t.Fatal(err)
	}
	var out []Frame
	for i := range secs * 10 {
		at := from.Add(time.Duration(i) * 100 * time.Millisecond)
		for _, f := range []Frame{
			{Track: 0, Time: at, Key: i%10 == 0, Data: []byte{tag, byte(i), byte(i >> 8), 0x65}},
			{Track: 1, Time: at.Add(10 * time.Millisecond), Key: true, Data: []byte{tag, byte(i), byte(i >> 8), 0xa}},
		} {
			if _, err := w.Append(f); err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return out
}

// records returns s's frames records, in log order.
func records(t *testing.T, s *Store) []Record {
	t.Helper()
	all, err := s.ReadAfter(Position{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, r := range all {
		if r.Kind == KindFrames {
			out = append(out, r)
		}
	}
	return out
}

type replFrameKey struct {
	track uint8
	t     int64
	data  string
}

func keysOf(fs []Frame) map[replFrameKey]int {
	m := map[replFrameKey]int{}
	for _, f := range fs {
		m[replFrameKey{f.Track, f.Time.UnixNano(), string(f.Data)}]++
	}
	return m
}

// replRead reads stream merged (or not) from s.
func replRead(t *testing.T, s *Store, stream string, merged bool) []Frame {
	t.Helper()
	from, to := replT0.Add(-time.Hour), replT0.Add(time.Hour)
	var next func() (ReadFrame, error)
	if merged {
		r, err := s.MergedFrames(stream, from, to)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		next = r.Next
	} else {
		r, err := s.Frames(stream, from, to)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		next = r.Next
	}
	var out []Frame
	for {
		f, err := next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.Frame)
	}
}

// sameSet reports how got differs from want as multisets.
func sameSet(got, want []Frame) error {
	g, w := keysOf(got), keysOf(want)
	for k, n := range g {
		if n > 1 {
			return fmt.Errorf("frame track %d at %v returned %d times", k.track, time.Unix(0, k.t).UTC(), n)
		}
		if w[k] == 0 {
			return fmt.Errorf("unexpected frame track %d at %v", k.track, time.Unix(0, k.t).UTC())
		}
	}
	for k := range w {
		if g[k] == 0 {
			return fmt.Errorf("missing frame track %d at %v", k.track, time.Unix(0, k.t).UTC())
		}
	}
	return nil
}

func TestDecodeRecord(t *testing.T) {
	src, _ := replStore(t)
	recordSecs(t, src, "cam1", 1, replT0, 2)
	rec := records(t, src)[0]
	tests := []struct {
		name   string
		mangle func([]byte) []byte
		ok     bool
	}{
		{"as written", func(b []byte) []byte { return b }, true},
		{"payload bit flipped", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, false},
		{"crc changed", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }, false},
		{"truncated", func(b []byte) []byte { return b[:len(b)-8] }, false},
		{"trailing bytes", func(b []byte) []byte { return append(b, make([]byte, 8)...) }, false},
		{"bad magic", func(b []byte) []byte { b[0] = 'x'; return b }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRecord(tc.mangle(append([]byte(nil), rec.Raw...)))
			if tc.ok {
				if err != nil || got.Stream != "cam1" || len(got.Frames) != len(rec.Frames) || got.Pos.Gen != rec.Pos.Gen {
					t.Fatalf("got %+v, %v", got.Stream, err)
				}
				return
			}
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("err %v, want ErrBadRecord", err)
			}
		})
	}
}

func TestReplicaApply(t *testing.T) {
	tests := []struct {
		name string
		// own is what the replica's store recorded itself (seconds from
		// t0, count); src what the source recorded.
		ownFrom, ownSecs, srcFrom, srcSecs int
		applyTwice                         bool
		wantBackfill                       bool
	}{
		{name: "empty replica", srcFrom: 0, srcSecs: 5},
		{name: "source newer than own", ownFrom: 0, ownSecs: 3, srcFrom: 4, srcSecs: 3},
		{name: "overlapping window kept twice", ownFrom: 0, ownSecs: 6, srcFrom: 4, srcSecs: 4, wantBackfill: true},
		{name: "sent twice", srcFrom: 0, srcSecs: 4, applyTwice: true},
		{name: "overlap sent twice", ownFrom: 0, ownSecs: 6, srcFrom: 3, srcSecs: 5, applyTwice: true, wantBackfill: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, _ := replStore(t)
			dst, _ := replStore(t)
			var want []Frame
			if tc.ownSecs > 0 {
				want = append(want, recordSecs(t, dst, "cam1", 'd', replT0.Add(time.Duration(tc.ownFrom)*time.Second), tc.ownSecs)...)
			}
			want = append(want, recordSecs(t, src, "cam1", 's', replT0.Add(time.Duration(tc.srcFrom)*time.Second), tc.srcSecs)...)
			rep := NewReplica(dst)
			for range map[bool]int{false: 1, true: 2}[tc.applyTwice] {
				for _, r := range records(t, src) {
					if _, err := rep.Apply(r, ApplyOptions{Source: "src"}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := dst.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := sameSet(replRead(t, dst, "cam1", true), want); err != nil {
				t.Error(err)
			}
			bf := replRead(t, dst, BackfillName("cam1", "src"), false)
			if (len(bf) > 0) != tc.wantBackfill {
				t.Errorf("%d frames in the backfill stream, want some: %v", len(bf), tc.wantBackfill)
			}
			// The main stream alone never goes back in time per track.
			last := map[uint8]time.Time{}
			for _, f := range replRead(t, dst, "cam1", false) {
				if f.Time.Before(last[f.Track]) {
					t.Fatalf("track %d goes back from %v to %v", f.Track, last[f.Track], f.Time)
				}
				last[f.Track] = f.Time
			}
			if !tc.wantBackfill {
				spans, _, _ := dst.MergedSpans("cam1", replT0, replT0.Add(time.Minute))
				if len(spans) == 0 {
					t.Error("no merged spans")
				}
			}
		})
	}
}

func TestReplicaAfterReopen(t *testing.T) {
	// The replica's store closes in the middle of a backfill and reopens;
	// the source re-sends everything: nothing is returned twice and
	// nothing is lost.
	src, _ := replStore(t)
	dst, dir := replStore(t)
	want := recordSecs(t, dst, "cam1", 'd', replT0, 6)
	want = append(want, recordSecs(t, src, "cam1", 's', replT0.Add(3*time.Second), 6)...)
	recs := records(t, src)
	rep := NewReplica(dst)
	for _, r := range recs[:len(recs)*3/4] {
		if _, err := rep.Apply(r, ApplyOptions{Source: "src"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dst = replOpen(t, dir)
	rep = NewReplica(dst)
	for _, r := range recs {
		if _, err := rep.Apply(r, ApplyOptions{Source: "src"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sameSet(replRead(t, dst, "cam1", true), want); err != nil {
		t.Error(err)
	}
	// Nor stored twice: the re-sent frames the stream held already were
	// dropped, so main and backfill together hold each frame once.
	all := append(replRead(t, dst, "cam1", false), replRead(t, dst, BackfillName("cam1", "src"), false)...)
	if err := sameSet(all, want); err != nil {
		t.Errorf("stored: %v", err)
	}
}

func TestResumeBefore(t *testing.T) {
	s, _ := replStore(t)
	frames := recordSecs(t, s, "cam1", 1, replT0, 10)
	for _, at := range []time.Duration{0, 2500 * time.Millisecond, 5 * time.Second, 9900 * time.Millisecond, 20 * time.Second} {
		t.Run(at.String(), func(t *testing.T) {
			after := replT0.Add(at)
			pos, err := s.ResumeBefore("cam1", after)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := s.ReadAfter(pos, 10000)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []Frame
			for _, r := range recs {
				for _, f := range r.Frames {
					if f.Time.After(after) {
						got = append(got, f)
					}
				}
			}
			for _, f := range frames {
				if f.Time.After(after) {
					want = append(want, f)
				}
			}
			if err := sameSet(got, want); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestBytesAfter(t *testing.T) {
	s, _ := replStore(t)
	if n := s.BytesAfter(Position{}); n <= 0 {
		t.Fatalf("empty store: %d bytes (the open record)", n)
	}
	recordSecs(t, s, "cam1", 1, replT0, 5)
	recs := records(t, s)
	total := s.BytesAfter(Position{})
	mid := s.BytesAfter(recs[len(recs)/2].Pos)
	last := s.BytesAfter(recs[len(recs)-1].Pos)
	if !(total > mid && mid > last && last > 0) {
		t.Errorf("bytes after: start %d, middle %d, last record %d; want decreasing", total, mid, last)
	}
}

// FuzzDecodeShippedRecord feeds DecodeRecord (the mirror receiver's check
// of bytes from the network) arbitrary bytes: it must refuse them with
// ErrBadRecord or return a record whose frames lie inside them.
func FuzzDecodeShippedRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := DecodeRecord(raw)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		n := 0
		for _, fr := range rec.Frames {
			n += len(fr.Data)
		}
		if n > len(raw) {
			t.Fatalf("%d payload bytes from a %d-byte record", n, len(raw))
		}
	})
}

func TestMergedFramesTracks(t *testing.T) {
	// Two recordings of a window with different parameter sets: the
	// merged reader names the table in force whenever the next run comes
	// from the other recording, and every run starts at a keyframe.
	src, _ := replStore(t)
	dst, _ := replStore(t)
	other := cloneTracks(replTracks)
	other[0].Config = [][]byte{{0x67, 0x64}, {0x68, 0xee}}
	recordSecs(t, dst, "cam1", 'd', replT0, 4)
	recordSecsTracks(t, src, "cam1", 's', replT0.Add(1500*time.Millisecond), 4, other)
	rep := NewReplica(dst)
	for _, r := range records(t, src) {
		if _, err := rep.Apply(r, ApplyOptions{Source: "src"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := dst.MergedFrames("cam1", replT0.Add(-time.Minute), replT0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var cur []Track
	changes := 0
	for i := 0; ; i++ {
		f, err := m.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && f.Tracks == nil {
			t.Fatal("first frame without the track table")
		}
		if f.Tracks != nil {
			cur = f.Tracks
			changes++
			if !f.Key || f.Track != 0 {
				t.Errorf("table change on a frame that does not start a run: %+v", f.Frame)
			}
		}
		tag := f.Data[0]
		want := byte(0x42)
		if tag == 's' {
			want = 0x64
		}
		if f.Track == 0 && cur[0].Config[0][1] != want {
			t.Fatalf("frame of recording %c read under SPS %x", tag, cur[0].Config[0])
		}
	}
	if changes < 3 {
		t.Errorf("%d table changes, want the two recordings interleaved (>= 3)", changes)
	}
}
