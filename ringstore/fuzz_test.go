package ringstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs/memfs"
)

// seedRecords returns encoded records of every kind, for fuzz seeds.
func seedRecords() [][]byte {
	t0 := testBase.UnixNano()
	frames := &record{kind: KindFrames, flags: recKey | recTracks | recGap, gen: 7, time0: t0, stream: "cam1",
		gapCause: GapCameraOffline, gapStart: t0 - int64(time.Minute), tracks: h264Tracks(1),
		frames: []Frame{
			{Track: 0, Time: testBase, Key: true, Data: []byte{0, 0, 0, 2, 0x65, 0x88}},
			{Track: 1, Time: testBase.Add(-5 * time.Millisecond), Key: true, Data: []byte{1, 2, 3}},
			{Track: 0, Time: testBase.Add(40 * time.Millisecond), DTSOffset: 80 * time.Millisecond, Data: []byte{0, 0, 0, 1, 0x41}},
		}}
	return [][]byte{
		encodeRecord(nil, frames),
		encodeRecord(nil, &record{kind: KindOpen, gen: 8, time0: t0}),
		encodeRecord(nil, &record{kind: KindVoid, gen: 9, time0: t0, void: voidBody{slot: 3, gen: 8, offset: 4096}}),
		encodeRecord(nil, padRecord(9, 4096)),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, raw := range seedRecords() {
		r, err := decodeRecord(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if r.length != len(raw) || len(raw)%recAlign != 0 {
			t.Fatalf("length %d of %d bytes", r.length, len(raw))
		}
		again := encodeRecord(nil, r)
		if !bytes.Equal(again, raw) {
			t.Fatalf("%s record does not re-encode to the same bytes", r.kind)
		}
		for i := range raw {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x10
			if _, err := decodeRecord(bad); err == nil {
				t.Fatalf("%s record with byte %d flipped decodes", r.kind, i)
			}
		}
		if _, err := decodeRecord(raw[:len(raw)-1]); err == nil {
			t.Fatal("truncated record decodes")
		}
	}
	r, _ := decodeRecord(seedRecords()[0])
	if r.stream != "cam1" || len(r.frames) != 3 || r.frames[1].Time.UnixNano() != testBase.Add(-5*time.Millisecond).UnixNano() ||
		r.frames[2].DTSOffset != 80*time.Millisecond || !sameTracks(r.tracks, h264Tracks(1)) || r.gapCause != GapCameraOffline {
		t.Fatalf("decoded %+v", r)
	}
}

// FuzzDecodeRecord: the decoder never panics and never returns a record
// whose checksum does not match its bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, raw := range seedRecords() {
		f.Add(raw)
	}
	f.Add([]byte(recMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if r.length > len(b) || r.length%recAlign != 0 {
			t.Fatalf("record length %d of %d bytes", r.length, len(b))
		}
		want := binary.LittleEndian.Uint32(b[r.length-recCRCSize:])
		if crc32.Checksum(b[:r.length-recCRCSize], castagnoli) != want {
			t.Fatal("decoded a record whose CRC does not match")
		}
		if r.kind == KindFrames {
			for _, fr := range r.frames {
				if len(fr.Data) > r.length {
					t.Fatal("frame larger than its record")
				}
			}
		}
	})
}

// FuzzRebuild: rebuilding a volume whose slot holds arbitrary bytes never
// panics and indexes only valid records.
func FuzzRebuild(f *testing.F) {
	var seed []byte
	for _, raw := range seedRecords() {
		seed = append(seed, raw...)
	}
	f.Add(seed)
	f.Add(seedRecords()[0])
	f.Add(append(bytes.Repeat([]byte{0}, 4096), seed...))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := memfs.New()
		const slot = 64 << 10
		if len(data) > slot {
			data = data[:slot]
		}
		vol := VolumeInfo{ID: "fuzz", SlotSize: slot, Slots: 2, FormatVersion: FormatVersion}
		if err := fs.MkdirAll("/v/slots"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			fl, err := fs.Create(slotPath("/v", i))
			if err != nil {
				t.Fatal(err)
			}
			fl.Preallocate(slot)
			if i == 0 {
				fl.WriteAt(data, 0)
			}
			fl.Close()
		}
		rb, err := scanVolume(context.Background(), fs, "/v", vol, testKnobs{}, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range rb.slots {
			for _, e := range rs.entries {
				if e.offset < 0 || e.offset+int64(e.length) > int64(len(data)) {
					t.Fatalf("entry %+v outside the data", e)
				}
				r, err := decodeRecord(data[e.offset : e.offset+int64(e.length)])
				if err != nil || r.gen != e.gen || r.time0 != e.time0 {
					t.Fatalf("entry %+v is not a valid record: %v", e, err)
				}
			}
		}
	})
}
