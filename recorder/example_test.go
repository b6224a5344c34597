package recorder_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/nvrfw/nvr/recorder"
	"github.com/nvrfw/nvr/ringstore"
)

// Example shows how nvrd wires the recorder to the store: one Manager, each
// camera's frames into the store stream of its name.
func Example() {
	ctx := context.Background()
	store, err := ringstore.Open(ctx, "/var/nvr/vol0", ringstore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer store.Close()
	m, err := recorder.NewManager(recorder.ManagerOptions{
		Writer: func(name string) (recorder.FrameWriter, error) { return store.Stream(name) },
		Logger: slog.Default(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer m.Close() // before store.Close: stop appending first
	if err := m.Add(recorder.Camera{Name: "cam1", URL: "rtsp://admin:secret@192.0.2.10:554/stream1"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	for _, st := range m.Statuses() {
		fmt.Println(st.Name, st.State, st.FramesRecorded, st.LastError)
	}
}
