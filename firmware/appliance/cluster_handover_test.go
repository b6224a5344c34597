package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// TestHandoverWriterRelease plays a switchover on one stream: the mirror
// appends the old primary's frames while this node's session, started
// meanwhile, holds its own (the same encoded frames, stamped by this node's
// clock); on release the stream must continue after the mirror's newest
// frame without a gap or a frame twice.
func TestHandoverWriterRelease(t *testing.T) {
	const period = 40 * time.Millisecond
	base := time.Unix(1_800_000_000, 0)
	tracks := []ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000}}
	frame := func(i int, skew time.Duration, content string) ringstore.Frame {
		return ringstore.Frame{Track: 0, Time: base.Add(time.Duration(i)*period + skew), Key: i%25 == 0,
			Data: fmt.Appendf(nil, "%s-frame-%03d", content, i)}
	}
	tests := []struct {
		name       string
		mirrored   int           // frames 0..mirrored-1 from the mirror
		held       [2]int        // this node's frames [from, to)
		skew       time.Duration // this node's clock against the old primary's
		content    string        // this node's frames' content ("same": the same camera)
		wantFrames int           // in the stream after release
		wantCont   bool          // frames evenly spaced, no time twice
	}{
		{"overlap, clock ahead", 40, [2]int{30, 60}, 7 * time.Millisecond, "same", 60, true},
		{"overlap, clock behind", 40, [2]int{30, 60}, -13 * time.Millisecond, "same", 60, true},
		{"overlap longer than the camera's loop", 40, [2]int{0, 60}, 3 * time.Millisecond, "same", 60, true},
		{"no overlap: held frames after the mirror's", 40, [2]int{45, 60}, 0, "same", 55, false},
		{"no matching content: held frames after the newest by time", 40, [2]int{30, 60}, 0, "other", 60, false},
		{"no mirrored footage", 0, [2]int{0, 20}, 5 * time.Millisecond, "same", 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ringstore.Open(context.Background(), formatStore(t, 64<<20), ringstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if tc.mirrored > 0 {
				sw, err := st.Stream("cam")
				if err != nil {
					t.Fatal(err)
				}
				sw.SetTracks(tracks)
				for i := range tc.mirrored {
					// "Loop" every 50 frames: content repeats, as a simulator's.
					f := frame(i, 0, "same")
					f.Data = fmt.Appendf(nil, "same-frame-%03d", i%50)
					if _, err := sw.Append(f); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			hs := newHandoverSet(st, slog.New(slog.DiscardHandler))
			hs.hold()
			fw, err := hs.writer("cam")
			if err != nil {
				t.Fatal(err)
			}
			fw.SetTracks(tracks)
			for i := tc.held[0]; i < tc.held[1]; i++ {
				f := frame(i, tc.skew, tc.content)
				if tc.content == "same" {
					f.Data = fmt.Appendf(nil, "same-frame-%03d", i%50)
				}
				if _, err := fw.Append(f); err != nil {
					t.Fatal(err)
				}
			}
			if got, ok := hs.firstHeld("cam"); !ok || !got.Equal(base.Add(time.Duration(tc.held[0])*period+tc.skew)) {
				t.Fatalf("firstHeld %v %v", got, ok)
			}
			hs.release()
			// After release the session writes through, shifted alike.
			next := frame(tc.held[1], tc.skew, tc.content)
			if tc.content == "same" {
				next.Data = fmt.Appendf(nil, "same-frame-%03d", tc.held[1]%50)
			}
			if _, err := fw.Append(next); err != nil {
				t.Fatal(err)
			}
			if err := st.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			r, err := st.Frames("cam", base.Add(-time.Second), base.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got []ringstore.ReadFrame
			for {
				f, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, f)
			}
			if len(got) != tc.wantFrames+1 {
				t.Fatalf("%d frames in the stream, want %d", len(got), tc.wantFrames+1)
			}
			for i := 1; i < len(got); i++ {
				d := got[i].Time.Sub(got[i-1].Time)
				if d <= 0 {
					t.Fatalf("frame %d at %v, not after the one before (%v)", i, got[i].Time, got[i-1].Time)
				}
				if tc.wantCont && d != period {
					t.Fatalf("frame %d: %v after the one before, want %v", i, d, period)
				}
				if tc.wantCont && string(got[i].Data) != fmt.Sprintf("same-frame-%03d", i%50) {
					t.Fatalf("frame %d holds %q", i, got[i].Data)
				}
			}
		})
	}
}

// TestHandoverWriterSilence: a stopping session's late frames are dropped.
func TestHandoverWriterSilence(t *testing.T) {
	st, err := ringstore.Open(context.Background(), formatStore(t, 64<<20), ringstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := newHandoverSet(st, slog.New(slog.DiscardHandler))
	fw, err := hs.writer("cam")
	if err != nil {
		t.Fatal(err)
	}
	fw.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000}})
	t0 := time.Unix(1_800_000_000, 0)
	if _, err := fw.Append(ringstore.Frame{Time: t0, Key: true, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	hs.silence()
	if _, err := fw.Append(ringstore.Frame{Time: t0.Add(time.Second), Key: true, Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := st.NewestByStream()["cam"]; !n.Equal(t0) {
		t.Fatalf("newest frame %v, want %v (the late frame dropped)", n, t0)
	}
}

// TestHandoverWriterLeaseGate: frames appended while the lease is stale
// wait, go to the store in order once it is fresh, and are dropped if the
// node stands down first.
func TestHandoverWriterLeaseGate(t *testing.T) {
	for _, standDown := range []bool{false, true} {
		t.Run(fmt.Sprintf("stand down %v", standDown), func(t *testing.T) {
			st, err := ringstore.Open(context.Background(), formatStore(t, 64<<20), ringstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fresh := true
			hs := newHandoverSet(st, slog.New(slog.DiscardHandler))
			hs.setGate(func() bool { return fresh })
			fw, err := hs.writer("cam")
			if err != nil {
				t.Fatal(err)
			}
			fw.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000}})
			t0 := time.Unix(1_800_000_000, 0)
			add := func(i int) {
				if _, err := fw.Append(ringstore.Frame{Time: t0.Add(time.Duration(i) * 40 * time.Millisecond), Key: i == 0, Data: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
			add(0)
			fresh = false
			add(1)
			add(2)
			st.Flush(context.Background())
			if n := st.NewestByStream()["cam"]; !n.Equal(t0) {
				t.Fatalf("newest %v while the lease is stale, want the first frame's %v", n, t0)
			}
			if standDown {
				hs.silence()
			}
			fresh = true
			add(3)
			st.Flush(context.Background())
			want := t0.Add(3 * 40 * time.Millisecond)
			if standDown {
				want = t0
			}
			if n := st.NewestByStream()["cam"]; !n.Equal(want) {
				t.Fatalf("newest %v, want %v", n, want)
			}
			r, err := st.Frames("cam", t0, t0.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n := 0
			for ; ; n++ {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			if wantN := map[bool]int{false: 4, true: 1}[standDown]; n != wantN {
				t.Fatalf("%d frames stored, want %d", n, wantN)
			}
		})
	}
}
