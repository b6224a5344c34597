package clip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// pmp4 writes H.265 tracks with an 'hev1' sample entry (parameter sets may
// also be in-band). Apple players only play 'hvc1', which has the same
// layout and requires the sample entry's parameter-set arrays to be complete.
// A clip never changes parameter sets (it is cut at a change), so every
// in-band parameter set repeats the sample entry's: the header is patched
// in place to 'hvc1' with array_completeness set.

// visualSampleEntryLen is the size of a VisualSampleEntry's fields after
// its box header, before its child boxes (ISO/IEC 14496-12 12.1.3).
const visualSampleEntryLen = 78

// hvcCFixedLen is the size of an HEVCDecoderConfigurationRecord's fields
// before its parameter-set arrays (ISO/IEC 14496-15 8.3.3.1), counting
// numOfArrays.
const hvcCFixedLen = 23

// container reports whether typ is a box on the path from the file to a
// sample entry, and how many bytes of fields precede its children.
func container(typ string) (int, bool) {
	switch typ {
	case "moov", "trak", "mdia", "minf", "stbl":
		return 0, true
	case "stsd":
		return 8, true
	}
	return 0, false
}

// patchHvc1 rewrites, in the rendered header b, every 'hev1' sample entry as
// 'hvc1' with complete parameter-set arrays. b may end inside the mdat box.
func patchHvc1(b []byte) error {
	return walkBoxes(b, 0)
}

func walkBoxes(b []byte, depth int) error {
	if depth > 8 {
		return errors.New("boxes nested too deep")
	}
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		if size == 1 {
			if len(b) < 16 {
				return errors.New("truncated large box header")
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if typ == "mdat" {
			return nil
		}
		if size < hdr || size > uint64(len(b)) {
			return fmt.Errorf("box %q of %d bytes overruns its parent (%d left)", typ, size, len(b))
		}
		body := b[hdr:size]
		if skip, ok := container(typ); ok && len(body) >= skip {
			if err := walkBoxes(body[skip:], depth+1); err != nil {
				return err
			}
		}
		if typ == "hev1" {
			if err := patchHev1(b[:size], body); err != nil {
				return err
			}
		}
		b = b[size:]
	}
	return nil
}

func patchHev1(box, body []byte) error {
	if len(body) < visualSampleEntryLen {
		return errors.New("short hev1 sample entry")
	}
	for kids := body[visualSampleEntryLen:]; len(kids) >= 8; {
		size := int(binary.BigEndian.Uint32(kids))
		if size < 8 || size > len(kids) {
			return errors.New("bad box inside hev1")
		}
		if string(kids[4:8]) == "hvcC" {
			if err := completeArrays(kids[8:size]); err != nil {
				return err
			}
			copy(box[4:8], "hvc1")
			return nil
		}
		kids = kids[size:]
	}
	return errors.New("hev1 sample entry without hvcC")
}

// completeArrays sets array_completeness on each parameter-set array of an
// hvcC record.
func completeArrays(rec []byte) error {
	if len(rec) < hvcCFixedLen {
		return errors.New("short hvcC")
	}
	n := int(rec[hvcCFixedLen-1])
	p := rec[hvcCFixedLen:]
	for range n {
		if len(p) < 3 {
			return errors.New("truncated hvcC array")
		}
		p[0] |= 0x80
		nalus := int(binary.BigEndian.Uint16(p[1:]))
		p = p[3:]
		for range nalus {
			if len(p) < 2 {
				return errors.New("truncated hvcC NALU")
			}
			l := int(binary.BigEndian.Uint16(p))
			if len(p) < 2+l {
				return errors.New("truncated hvcC NALU")
			}
			p = p[2+l:]
		}
	}
	return nil
}
