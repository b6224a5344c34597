package slots_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/slots"
)

// The upgrade protocol of doc.go on a scratch boot directory: provision,
// install into the other slot, boot the trial, confirm.
func Example() {
	dir, _ := os.MkdirTemp("", "boot")
	defer os.RemoveAll(dir)
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	open := func(version string) *bundle.Bundle {
		part := func(name string) bundle.Source {
			return bundle.Source{Name: name, Open: func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader([]byte(name + " " + version))), nil
			}}
		}
		var buf bytes.Buffer
		bundle.Pack(&buf, key, bundle.Manifest{Version: version, Boards: []string{"nvr4"}},
			[]bundle.Source{part(bundle.PartKernel), part(bundle.PartInitramfs)})
		b, err := bundle.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()),
			bundle.Options{Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, Board: "nvr4"})
		if err != nil {
			panic(err)
		}
		return b
	}
	m, _ := slots.New(slots.Options{Dir: dir})
	m.Provision(context.Background(), open("1.0.0"), nil)

	booted, _, _ := m.Boot() // power-on: the bootloader's choice
	target, _ := m.Install(context.Background(), open("1.1.0"), booted, nil)
	fmt.Println("running", booted, "installed into", target)

	booted, _, _ = m.Boot() // reboot: the trial, once
	changed, _ := m.Confirm(booted)
	st, _ := m.Status(booted)
	fmt.Println("booted", booted, "confirmed", changed, "default", st.Default, "version", st.Versions[st.Default])
	// Output:
	// running a installed into b
	// booted b confirmed true default b version 1.1.0
}
