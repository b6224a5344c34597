package mirror_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/ringstore"
	"github.com/nvrfw/nvr/ringstore/mirror"
)

// The standby runs a Receiver on its mirror port; the primary runs a
// Sender toward it while it is primary. In nvrd the TLS material comes from
// the pairing bundle, the epoch and path from the cluster node.
func Example() {
	ctx := context.Background()
	keys, _ := pairing.Pair([]string{"a", "b"})
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	open := func() *ringstore.Store {
		dir, _ := os.MkdirTemp("", "mirror-example")
		dirs = append(dirs, dir)
		ringstore.Format(ctx, dir, ringstore.FormatOptions{Size: 8 << 20, SlotSize: 1 << 20})
		s, _ := ringstore.Open(ctx, dir, ringstore.Options{CommitInterval: 50 * time.Millisecond})
		return s
	}
	primary, standby := open(), open()
	defer primary.Close()
	defer standby.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	recv, _ := mirror.NewReceiver(mirror.ReceiverOptions{Store: standby, NodeID: "b", TLS: keys[1].ServerConfig()})
	send, _ := mirror.NewSender(mirror.SenderOptions{
		Store: primary, NodeID: "a", TLS: keys[0].ClientConfig(),
		Addr:  func() (string, bool) { return ln.Addr().String(), true }, // cluster: PeerAddr(MirrorPath)
		Epoch: func() uint64 { return 1 },                                // cluster: the epoch it is primary under
	})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { recv.Serve(rctx, ln); done <- struct{}{} }()
	go func() { send.Run(rctx); done <- struct{}{} }()

	w, _ := primary.Stream("cam1")
	w.SetTracks([]ringstore.Track{{ID: 0, Codec: ringstore.CodecH264, ClockRate: 90000}})
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 50 {
		w.Append(ringstore.Frame{Time: t0.Add(time.Duration(i) * 40 * time.Millisecond), Key: i%25 == 0, Data: []byte{0, 0, 0, 1, 0x65}})
	}
	primary.Flush(ctx)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st := send.Status(); st.Connected && st.LagBytes == 0 && !st.AckedNewest.IsZero() {
			break
		}
	}
	st := send.Status()
	fmt.Println("lag:", st.LagBytes, "bytes", st.LagSeconds, "s")
	fmt.Println("standby holds until:", standby.NewestByStream()["cam1"].Sub(t0))
	stop()
	<-done
	<-done
	// Output:
	// lag: 0 bytes 0 s
	// standby holds until: 1.96s
}
