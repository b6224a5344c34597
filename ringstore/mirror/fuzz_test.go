package mirror

import (
	"bytes"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// FuzzDecode feeds arbitrary bytes to the frame reader and every message
// decoder: they must return an error or a message that re-encodes to the
// same payload, never panic or allocate beyond the limits.
func FuzzDecode(f *testing.F) {
	h := hello{MinVersion: 1, MaxVersion: 2, StoreFormat: 1, Epoch: 7, NodeID: "a", VolumeID: "vol"}
	rep := helloReply{Version: 2, StoreFormat: 1, Epoch: 7, NodeID: "b", VolumeID: "v2", Streams: []streamMark{{Name: "cam1", Newest: t0, FromYou: t0.Add(-time.Second)}}}
	b := batch{Epoch: 7, Seq: 3, Evicted: t0, Records: []batchRecord{{Pos: ringstore.Position{Gen: 4, Offset: 8192}, After: t0, Raw: []byte("nvrR\x01\x01")}}, PrimaryNewest: t0}
	a := ack{Seq: 3, Pos: ringstore.Position{Gen: 4, Offset: 8192}, Newest: t0}
	e := errorMsg{Code: CodeReplay, Text: "replayed"}
	for _, m := range []struct {
		typ     uint8
		payload []byte
	}{{msgHello, h.encode()}, {msgHelloReply, rep.encode()}, {msgBatch, b.encode(2)}, {msgBatch, b.encode(1)}, {msgAck, a.encode()}, {msgError, e.encode()}} {
		var buf bytes.Buffer
		if err := writeFrame(&buf, 2, m.typ, m.payload); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := readFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		var again []byte
		switch fr.Type {
		case msgHello:
			m, err := decodeHello(fr.Payload)
			if err != nil {
				return
			}
			again = m.encode()
		case msgHelloReply:
			m, err := decodeHelloReply(fr.Payload)
			if err != nil {
				return
			}
			again = m.encode()
		case msgBatch:
			v := min(fr.Version, MaxVersion)
			m, err := decodeBatch(fr.Payload, v)
			if err != nil {
				return
			}
			again = m.encode(v)
		case msgAck:
			m, err := decodeAck(fr.Payload)
			if err != nil {
				return
			}
			again = m.encode()
		case msgError:
			m, err := decodeError(fr.Payload)
			if err != nil {
				return
			}
			again = m.encode()
		}
		if !bytes.Equal(again, fr.Payload) {
			t.Fatalf("type %d: re-encoded %x, read %x", fr.Type, again, fr.Payload)
		}
	})
}
