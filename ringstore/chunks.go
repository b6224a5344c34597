package ringstore

import "sync"

// chunkSize is the size of the pieces the streams' pending (not yet
// committed) bytes are kept in.
//
// Each stream's pending frames are one logical byte sequence stored in
// chunks of chunkSize, all full but the last, so a frame of any size
// needs no contiguous buffer of its own. The chunks come from the store's
// chunkPool; a commit takes a stream's chunks with its frames, writes them
// and gives them back, and the streams appending meanwhile take them again.
// Memory for pending bytes is therefore about one commit tick of footage
// (plus what arrives during the write), instead of the two buffers per
// stream, each sized to its largest tick, that a per-stream double buffer
// holds.
const chunkSize = 64 << 10

// chunkPool is the store's free list of pending-byte chunks. Safe for
// concurrent use (appenders take, the writer gives back).
//
// Chunks live outside the Go heap where the platform allows it (newChunk):
// they are most of the recorder's memory, hold no pointers, and have a
// lifetime the store controls exactly (a stream's pending bytes, then the
// batch being written, then the pool), so the garbage collector need
// neither scan them nor let the heap grow to twice their size before it
// runs. Nothing outside the store ever sees a chunk: frames are copied in
// by Append and out through the writer's buffer.
type chunkPool struct {
	mu   sync.Mutex
	free [][]byte
}

// get returns an empty chunk of capacity chunkSize.
func (p *chunkPool) get() []byte {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c[:0]
	}
	p.mu.Unlock()
	return newChunk()
}

// put gives back the chunks of a written batch and keeps at most keep free
// chunks (what the next tick is expected to need); the rest are left to the
// garbage collector, so memory follows the footage rate down too.
func (p *chunkPool) put(chunks [][]byte, keep int) {
	keep = max(keep, 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range chunks {
		if len(p.free) >= keep {
			freeChunk(c)
			continue
		}
		p.free = append(p.free, c[:0])
	}
	if len(p.free) > keep {
		for _, c := range p.free[keep:] {
			freeChunk(c)
		}
		clear(p.free[keep:])
		p.free = p.free[:keep]
	}
}

// release frees every free chunk. The store calls it once its writer has
// stopped; chunks a stream still holds (an Append racing Close) are left to
// the process.
func (p *chunkPool) release() { p.put(nil, 0) }

// size returns how many chunks are free.
func (p *chunkPool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// pieces returns the slices of chunks holding the logical bytes [from, to)
// of a chunked sequence (see chunkSize).
func pieces(dst [][]byte, chunks [][]byte, from, to int) [][]byte {
	for from < to {
		c := chunks[from/chunkSize]
		a := from % chunkSize
		b := min(len(c), a+(to-from))
		dst = append(dst, c[a:b:b])
		from += b - a
	}
	return dst
}
