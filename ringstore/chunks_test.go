package ringstore

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestPieces(t *testing.T) {
	full := func(b byte) []byte { return bytes.Repeat([]byte{b}, chunkSize) }
	chunks := [][]byte{full(1), full(2), {3, 3, 3}}
	tests := []struct {
		name     string
		from, to int
		want     []int // piece lengths
	}{
		{"empty", 10, 10, nil},
		{"inside one chunk", 10, 20, []int{10}},
		{"a whole chunk", 0, chunkSize, []int{chunkSize}},
		{"across a boundary", chunkSize - 5, chunkSize + 7, []int{5, 7}},
		{"across three chunks into the partial one", 1, 2*chunkSize + 2, []int{chunkSize - 1, chunkSize, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := pieces(nil, chunks, tt.from, tt.to)
			var lens []int
			var got []byte
			for _, p := range ps {
				lens = append(lens, len(p))
				got = append(got, p...)
			}
			want := bytes.Join(chunks, nil)[tt.from:tt.to]
			if !bytes.Equal(got, want) || len(lens) != len(tt.want) {
				t.Fatalf("pieces %v, want lengths %v", lens, tt.want)
			}
			for i := range lens {
				if lens[i] != tt.want[i] {
					t.Fatalf("pieces %v, want lengths %v", lens, tt.want)
				}
			}
		})
	}
}

func TestChunkPoolKeepsWhatTheNextTickNeeds(t *testing.T) {
	var p chunkPool
	var cs [][]byte
	for range 10 {
		c := p.get()
		if len(c) != 0 || cap(c) != chunkSize {
			t.Fatalf("chunk len %d cap %d, want 0 %d", len(c), cap(c), chunkSize)
		}
		cs = append(cs, append(c, 1, 2, 3))
	}
	p.put(cs[:6], 8)
	if n := p.size(); n != 6 {
		t.Fatalf("%d free after giving back 6 with keep 8, want 6", n)
	}
	p.put(cs[6:], 8)
	if n := p.size(); n != 8 {
		t.Fatalf("%d free after giving back 10 with keep 8, want 8", n)
	}
	if c := p.get(); len(c) != 0 || cap(c) != chunkSize {
		t.Fatalf("reused chunk len %d cap %d, want 0 %d", len(c), cap(c), chunkSize)
	}
	p.put(nil, 2) // the footage rate went down: the excess goes
	if n := p.size(); n != 2 {
		t.Fatalf("%d free after keep 2, want 2", n)
	}
}

// Frames of every size round-trip through the chunked pending buffers:
// smaller than, equal to, and several times larger than a chunk, starting
// anywhere in one; and after the first commit the streams run on the
// chunks the writer gave back.
func TestChunkedFramesRoundTrip(t *testing.T) {
	e := newEnv(t, 64<<20, 16<<20)
	s := e.open(t)
	defer s.Close()
	sizes := []int{11, 100, chunkSize - 30, chunkSize, chunkSize + 1, 3*chunkSize + 17, 12, 2 * chunkSize, 5000} // frameBytes needs 11
	var want int
	for tick := range 3 {
		for _, name := range []string{"a", "b"} {
			w, err := s.Stream(name)
			if err != nil {
				t.Fatal(err)
			}
			if tick == 0 {
				if err := w.SetTracks(h264Tracks(1)); err != nil {
					t.Fatal(err)
				}
			}
			for i, n := range sizes {
				ft := testBase.Add(time.Duration(tick*len(sizes)+i) * 40 * time.Millisecond)
				if _, err := w.Append(Frame{Track: 0, Time: ft, Key: i%4 == 0, Data: frameBytes(name, 0, ft, n)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		want += len(sizes)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if tick > 0 && s.chunks.size() == 0 {
			t.Errorf("tick %d: no chunk kept for the next tick", tick)
		}
	}
	for _, name := range []string{"a", "b"} {
		got := readAll(t, s, name, testBase, testBase.Add(time.Hour))
		if len(got) != want {
			t.Fatalf("stream %s: read %d frames, want %d", name, len(got), want)
		}
		for i, f := range got {
			if n := sizes[i%len(sizes)]; len(f.Data) != n {
				t.Fatalf("stream %s frame %d: %d bytes, want %d", name, i, len(f.Data), n)
			}
		}
	}
	rep, err := s.Check(context.Background(), nil)
	if err != nil || !rep.Healthy() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	mustMatchRebuild(t, s)
}
