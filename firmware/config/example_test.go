package config_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/nvrfw/nvr/firmware/config"
)

// The running system subscribes to changes and applies the live ones; a
// subscriber hands the change to its own goroutine in real code.
func ExampleStore_Subscribe() {
	dir, err := os.MkdirTemp("", "config-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := config.Open(config.Options{Path: filepath.Join(dir, "config.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	cancel := store.Subscribe(func(ch config.Change) {
		switch {
		case ch.Effect == config.Restart:
			fmt.Println("saved; applies at the next start:", ch.Kind)
		case ch.Kind == "camera.add":
			cam, _ := ch.After.Camera("lobby")
			fmt.Println("start recording", cam.Name, "password", cam.Password)
		}
	})
	defer cancel()

	cam := config.Camera{Name: "lobby", URL: "rtsp://192.0.2.5/stream1", Username: "admin", Password: "secret", Enabled: true}
	if _, err := store.Apply("console:admin", config.AddCamera{Camera: cam}); err != nil {
		log.Fatal(err)
	}
	if _, err := store.Apply("console:admin", config.SetStorage{Storage: config.Storage{DataDir: "/data"}}); err != nil {
		log.Fatal(err)
	}
	_, err = store.Apply("console:admin", config.AddCamera{Camera: config.Camera{Name: "Bad Name", URL: "rtsp://x/"}})
	fmt.Println(err)

	audit, _ := store.Audit(0, 10)
	for _, e := range audit {
		fmt.Println(e.Seq, e.Actor, e.What)
	}
	// Output:
	// start recording lobby password ********
	// saved; applies at the next start: storage.set
	// camera.add: cameras[Bad Name].name: must be 1-32 characters of a-z, 0-9, - and _
	// 2 console:admin set storage data-dir /data index  commit-interval 0s default-max-age 0s
	// 1 console:admin add camera lobby url rtsp://192.0.2.5/stream1 transport tcp user admin password ******** max-age 0s enabled true
}
