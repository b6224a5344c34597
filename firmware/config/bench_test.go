package config

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkHashPasswordDefault is the login cost with the default argon2id
// parameters (t=3, 64 MiB, p=2).
func BenchmarkHashPasswordDefault(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery", Argon2Params{}, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply is one audited, fsynced configuration change.
func BenchmarkApply(b *testing.B) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "c.db"), Argon2: fastArgon})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	i := 0
	for b.Loop() {
		c := Camera{Name: fmt.Sprintf("cam-%d", i%200), URL: "rtsp://192.0.2.1/s", Transport: TransportTCP}
		var m Mutation = AddCamera{Camera: c}
		if i >= 200 {
			m = UpdateCamera{Camera: c}
		}
		if _, err := s.Apply("bench", m); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
