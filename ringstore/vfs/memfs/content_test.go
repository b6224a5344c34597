package memfs

import (
	"bytes"
	"testing"
)

func TestContentAgainstSlice(t *testing.T) {
	// Every operation on content matches the same operation on a plain
	// slice, across page boundaries; clones are unaffected by later writes.
	type write struct {
		off int64
		n   int
	}
	tests := []struct {
		name   string
		grow   int64
		writes []write
		prefix int64
	}{
		{"inside one page", 0, []write{{10, 20}}, 30},
		{"across pages", 0, []write{{pageSize - 5, 10}, {3 * pageSize, 1}}, 3*pageSize + 1},
		{"whole pages over preallocated", 4 * pageSize, []write{{pageSize, 2 * pageSize}}, 2*pageSize + 7},
		{"overlapping", 0, []write{{0, 3 * pageSize}, {100, pageSize}, {pageSize + 1, 2}}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c content
			var ref []byte
			c.grow(tt.grow)
			ref = make([]byte, tt.grow)
			snap := c.clone()
			snapRef := bytes.Clone(ref)
			for i, w := range tt.writes {
				p := bytes.Repeat([]byte{byte('a' + i)}, w.n)
				c.writeAt(p, w.off)
				if end := w.off + int64(w.n); end > int64(len(ref)) {
					ref = append(ref, make([]byte, end-int64(len(ref)))...)
				}
				copy(ref[w.off:], p)
			}
			if got := c.bytes(0, c.size); !bytes.Equal(got, ref) {
				t.Fatalf("content differs from reference")
			}
			if got := snap.bytes(0, snap.size); !bytes.Equal(got, snapRef) {
				t.Fatalf("clone changed by later writes")
			}
			p := c.prefix(tt.prefix)
			p.grow(c.size)
			want := append(bytes.Clone(ref[:tt.prefix]), make([]byte, c.size-tt.prefix)...)
			if got := p.bytes(0, p.size); !bytes.Equal(got, want) {
				t.Fatalf("prefix then grow does not read zeros past the prefix")
			}
			c.zero(1, pageSize)
			clear(ref[1:min(1+pageSize, len(ref))])
			if got := c.bytes(0, c.size); !bytes.Equal(got, ref) {
				t.Fatalf("zero differs from reference")
			}
		})
	}
}
