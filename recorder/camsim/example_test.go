package camsim_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/nvrfw/nvr/recorder/camsim"
)

// A recorder test serves a camera, records it, switches a fault on, and
// compares what the recorder kept with what the camera sent.
func Example() {
	sim, err := camsim.New(camsim.Options{Address: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	if err := sim.AddPath("cam1", camsim.PathConfig{Video: camsim.H265, Audio: camsim.AAC, Bitrate: 4_000_000}); err != nil {
		log.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	url := sim.URL("cam1") // rtsp://127.0.0.1:PORT/cam1: point the recorder here

	before, _ := sim.Stats("cam1")
	_ = sim.Fault("cam1", camsim.Fault{Kind: camsim.FaultStall, Duration: 2 * time.Second})
	time.Sleep(3 * time.Second)
	after, _ := sim.Stats("cam1")
	sent, _ := sim.SentFrames("cam1", before.At, after.At)
	fmt.Println(url, after.Frames-before.Frames, len(sent))
}
