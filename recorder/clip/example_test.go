package clip_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nvrfw/nvr/recorder/clip"
	"github.com/nvrfw/nvr/ringstore"
)

// Exporting from the ring store: adapt the store with SourceFunc, Prepare
// once (the size is then known), and write the whole clip or any byte range.
func ExampleSourceFunc() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "clip-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 16 << 20, SlotSize: 4 << 20}); err != nil {
		log.Fatal(err)
	}
	store, err := ringstore.Open(ctx, dir, ringstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// Three seconds of 25 fps H.264 (a keyframe a second) as a recorder
	// would append them (synthetic slices; a real SPS and PPS).
	sps := []byte("gB\xc0\r\xda\x05\a\xec\x04@\x00\x00\x03\x00@\x00\x00\f\x83\xc5\n\xa8")
	pps := []byte("h\xce\x0f\xc8")
	w, _ := store.Stream("cam1")
	_ = w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000, Config: [][]byte{sps, pps}}})
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 75 {
		nalu := []byte{0x41, 0x9a, byte(i)}
		if i%25 == 0 {
			nalu[0] = 0x65
		}
		data := append(binary.BigEndian.AppendUint32(nil, uint32(len(nalu))), nalu...)
		_, _ = w.Append(ringstore.Frame{Time: start.Add(time.Duration(i) * 40 * time.Millisecond), Key: i%25 == 0, Data: data})
	}
	_ = store.Flush(ctx)

	plan, err := clip.Prepare(ctx, clip.SourceFunc(store.Frames), clip.Options{
		Stream: "cam1", From: start.Add(1500 * time.Millisecond), To: start.Add(3 * time.Second)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("starts at the keyframe:", plan.Start.Sub(start))
	fmt.Println("frames:", plan.Tracks[0].Samples, "lasting", plan.Tracks[0].Duration)
	var whole, tail bytes.Buffer
	if _, err := plan.Write(ctx, &whole); err != nil {
		log.Fatal(err)
	}
	if err := plan.WriteRange(ctx, &tail, plan.Size()-100, 100); err != nil {
		log.Fatal(err)
	}
	fmt.Println("size known in advance:", int64(whole.Len()) == plan.Size())
	fmt.Println("range equals the tail:", bytes.Equal(tail.Bytes(), whole.Bytes()[whole.Len()-100:]))
	// Output:
	// starts at the keyframe: 1s
	// frames: 50 lasting 2s
	// size known in advance: true
	// range equals the tail: true
}
