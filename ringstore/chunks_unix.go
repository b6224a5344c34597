//go:build unix

package ringstore

import "golang.org/x/sys/unix"

// newChunk returns an empty chunk of capacity chunkSize mapped outside the
// Go heap (anonymous private memory), or from the heap if mapping fails.
func newChunk() []byte {
	b, err := unix.Mmap(-1, 0, chunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, chunkSize)
	}
	return b[:0]
}

// freeChunk unmaps a chunk newChunk mapped; a heap chunk (which unix.Munmap
// does not know and refuses) is left to the garbage collector. The caller
// guarantees nothing refers to c any more.
func freeChunk(c []byte) {
	_ = unix.Munmap(c[:cap(c)])
}
