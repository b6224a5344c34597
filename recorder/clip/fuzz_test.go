package clip

import (
	"bytes"
	"testing"

	"github.com/nvrfw/nvr/ringstore"
)

// FuzzInbandParams feeds arbitrary access units (outside bytes: whatever a
// camera sent) to the in-band parameter-set scan: it must never panic, and
// whatever it finds must be a NALU of the access unit.
func FuzzInbandParams(f *testing.F) {
	f.Add(uint8(ringstore.CodecH264), []byte{0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65})
	f.Add(uint8(ringstore.CodecH265), []byte{0, 0, 0, 2, 0x40, 0x01, 0, 0, 0, 2, 0x42, 0x01, 0, 0, 0, 2, 0x44, 0x01})
	f.Add(uint8(ringstore.CodecH264), []byte{0xff, 0xff, 0xff, 0xff, 0x67})
	f.Fuzz(func(t *testing.T, codec uint8, au []byte) {
		p, err := inbandParams(ringstore.Codec(codec), au)
		for _, n := range [][]byte{p.vps, p.sps, p.pps} {
			if n != nil && !bytes.Contains(au, n) {
				t.Fatalf("found %x, not in the access unit", n)
			}
		}
		if err == nil && p.complete(ringstore.Codec(codec)) {
			// Complete sets from a valid AU map to a codec or a clean error.
			_, _, _ = trackCodec(ringstore.Track{Codec: ringstore.Codec(codec)}, p)
		}
	})
}

// FuzzPatchHvc1 feeds arbitrary box trees to the header patch: it must never
// panic, and must change nothing but sample-entry types and completeness bits.
func FuzzPatchHvc1(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 'f', 't', 'y', 'p', 0, 0, 0, 8, 'm', 'd', 'a', 't'})
	f.Add([]byte{0, 0, 0, 16, 'm', 'o', 'o', 'v', 0, 0, 0, 8, 'h', 'e', 'v', '1', 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 'm', 'o', 'o', 'v', 0, 0, 0, 0, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		_ = patchHvc1(b)
		if len(b) != len(orig) {
			t.Fatal("length changed")
		}
	})
}
