package ringstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// A volume is formatted once, then opened by the recorder; each camera
// stream appends frames, and readers start at keyframes.
func Example() {
	dir, _ := os.MkdirTemp("", "ringstore-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 8 << 20, SlotSize: 1 << 20}); err != nil {
		fmt.Println(err)
		return
	}
	s, err := ringstore.Open(ctx, dir, ringstore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	w, _ := s.Stream("cam1")
	w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{{0x67, 0x42}, {0x68, 0xce}}}})
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 50; i++ { // 2 s at 25 fps, a keyframe every second
		w.Append(ringstore.Frame{Time: start.Add(time.Duration(i) * 40 * time.Millisecond), Key: i%25 == 0, Data: []byte{0, 0, 0, 1, 0x65}})
	}
	if err := s.Flush(ctx); err != nil { // durable and visible to readers
		fmt.Println(err)
		return
	}

	r, _ := s.Frames("cam1", start.Add(1500*time.Millisecond), start.Add(2*time.Second))
	defer r.Close()
	n := 0
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if n == 0 {
			fmt.Println("first frame:", f.Time.Sub(start), "key:", f.Key, "tracks:", len(f.Tracks))
		}
		n++
	}
	fmt.Println("frames:", n)
	spans, _, _ := s.Spans("cam1", start, start.Add(time.Minute))
	fmt.Println("spans:", len(spans), spans[0].End.Sub(spans[0].Start))
	// Output:
	// first frame: 1s key: true tracks: 1
	// frames: 25
	// spans: 1 1.96s
}
