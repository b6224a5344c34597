//go:build !unix

package ringstore

// newChunk returns an empty chunk of capacity chunkSize from the heap
// (chunks_unix.go maps them outside it).
func newChunk() []byte { return make([]byte, 0, chunkSize) }

// freeChunk leaves c to the garbage collector.
func freeChunk(c []byte) {}
