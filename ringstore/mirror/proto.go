package mirror

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// Protocol versions. Version 2 adds one optional field to batches (the
// primary's newest committed frame time, for the standby's lag figure);
// a version 1 peer never sees it.
const (
	Version1 uint8 = 1
	Version2 uint8 = 2
	// MaxVersion is the newest version this firmware speaks.
	MaxVersion = Version2
	// MinVersion is the oldest version it still accepts (N-1).
	MinVersion = Version1
)

// Message types (the numbers are part of the protocol).
const (
	msgHello      uint8 = 1
	msgHelloReply uint8 = 2
	msgBatch      uint8 = 3
	msgAck        uint8 = 4
	msgError      uint8 = 5
)

const (
	frameMagic      = "NM"
	frameHeaderSize = 8
	// maxPayload bounds one message (a batch holds at most a few records
	// of at most 4 MiB of payload each, see Options.BatchBytes).
	maxPayload = 64 << 20
	// maxRecords bounds the records of one batch, maxStreams the streams
	// of a hello reply.
	maxRecords = 1 << 16
	maxStreams = 1 << 16
)

// ErrProtocol: the peer sent bytes that are not a valid message.
var ErrProtocol = errors.New("mirror: protocol violation")

// Error codes carried by error messages.
const (
	CodeStaleEpoch  uint8 = 1 // a message from an epoch below the highest seen
	CodeReplay      uint8 = 2 // a batch sequence number that did not increase
	CodeCorrupt     uint8 = 3 // a record failed its CRC or did not decode
	CodeVersion     uint8 = 4 // no protocol version in common
	CodeStoreFormat uint8 = 5 // the sender's store format is newer than the receiver reads
	CodeInternal    uint8 = 6 // the receiver failed (its store)
	CodeProtocol    uint8 = 7 // a malformed or unexpected message
	CodeNotStandby  uint8 = 8 // the receiving node is not the standby (it records itself)
)

// hello opens a connection (sender to receiver).
type hello struct {
	MinVersion, MaxVersion uint8
	StoreFormat            uint16
	Epoch                  uint64
	NodeID                 string
	RestartID              [16]byte
	VolumeID               string
}

// streamMark is what the receiver holds of one stream: its newest frame
// time, and the newest frame time it received from the connecting node.
type streamMark struct {
	Name            string
	Newest, FromYou time.Time
}

// helloReply answers a hello (receiver to sender).
type helloReply struct {
	Version     uint8
	StoreFormat uint16
	Epoch       uint64 // the epoch the receiver accepted (the sender's)
	NodeID      string
	RestartID   [16]byte
	VolumeID    string
	Streams     []streamMark
}

// batchRecord is one record as the sender's store wrote it.
type batchRecord struct {
	Pos   ringstore.Position
	After time.Time // apply only frames after this (content resumption); zero: all
	Raw   []byte
}

// batch carries records in log order (sender to receiver). An empty batch
// is a keepalive.
type batch struct {
	Epoch, Seq uint64
	// Evicted, when set, says the sender's ring dropped records the
	// receiver had not got: mark GapEvicted from this time.
	Evicted time.Time
	Records []batchRecord
	// PrimaryNewest (version 2) is the sender's newest committed frame.
	PrimaryNewest time.Time
}

// ack says everything up to Pos (batch Seq) is durable on the receiver.
type ack struct {
	Seq    uint64
	Pos    ringstore.Position
	Newest time.Time // newest frame time the receiver holds from the sender
}

// errorMsg explains why the peer closes the connection.
type errorMsg struct {
	Code uint8
	Text string
}

// enc appends big-endian fields.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.u64(0)
		return
	}
	e.u64(uint64(t.UnixNano()))
}
func (e *enc) str(s string) {
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) pos(p ringstore.Position) { e.u64(p.Gen); e.u64(uint64(p.Offset)) }

// dec reads big-endian fields; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func (d *dec) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: message truncated", ErrProtocol)
		return false
	}
	return true
}
func (d *dec) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}
func (d *dec) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}
func (d *dec) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}
func (d *dec) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}
func (d *dec) time() time.Time {
	v := int64(d.u64())
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}
func (d *dec) bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
func (d *dec) str() string { return string(d.bytes(int(d.u16()))) }
func (d *dec) pos() ringstore.Position {
	return ringstore.Position{Gen: d.u64(), Offset: int64(d.u64())}
}

// done fails when bytes are left over (older versions never get fields
// they do not know: the sender encodes for the negotiated version).
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrProtocol, len(d.b))
	}
	return d.err
}

func (m *hello) encode() []byte {
	var e enc
	e.u8(m.MinVersion)
	e.u8(m.MaxVersion)
	e.u16(m.StoreFormat)
	e.u64(m.Epoch)
	e.str(m.NodeID)
	e.b = append(e.b, m.RestartID[:]...)
	e.str(m.VolumeID)
	return e.b
}

func decodeHello(b []byte) (hello, error) {
	d := dec{b: b}
	var m hello
	m.MinVersion, m.MaxVersion = d.u8(), d.u8()
	m.StoreFormat = d.u16()
	m.Epoch = d.u64()
	m.NodeID = d.str()
	copy(m.RestartID[:], d.bytes(16))
	m.VolumeID = d.str()
	if err := d.done(); err != nil {
		return hello{}, fmt.Errorf("hello: %w", err)
	}
	if m.MinVersion == 0 || m.MinVersion > m.MaxVersion {
		return hello{}, fmt.Errorf("%w: hello versions %d..%d", ErrProtocol, m.MinVersion, m.MaxVersion)
	}
	return m, nil
}

func (m *helloReply) encode() []byte {
	var e enc
	e.u8(m.Version)
	e.u16(m.StoreFormat)
	e.u64(m.Epoch)
	e.str(m.NodeID)
	e.b = append(e.b, m.RestartID[:]...)
	e.str(m.VolumeID)
	e.u32(uint32(len(m.Streams)))
	for _, s := range m.Streams {
		e.str(s.Name)
		e.time(s.Newest)
		e.time(s.FromYou)
	}
	return e.b
}

func decodeHelloReply(b []byte) (helloReply, error) {
	d := dec{b: b}
	var m helloReply
	m.Version = d.u8()
	m.StoreFormat = d.u16()
	m.Epoch = d.u64()
	m.NodeID = d.str()
	copy(m.RestartID[:], d.bytes(16))
	m.VolumeID = d.str()
	n := d.u32()
	if n > maxStreams {
		return helloReply{}, fmt.Errorf("%w: hello reply with %d streams", ErrProtocol, n)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		m.Streams = append(m.Streams, streamMark{Name: d.str(), Newest: d.time(), FromYou: d.time()})
	}
	if err := d.done(); err != nil {
		return helloReply{}, fmt.Errorf("hello reply: %w", err)
	}
	return m, nil
}

// encode encodes the batch for protocol version v.
func (m *batch) encode(v uint8) []byte {
	var e enc
	e.u64(m.Epoch)
	e.u64(m.Seq)
	e.time(m.Evicted)
	e.u32(uint32(len(m.Records)))
	for _, r := range m.Records {
		e.pos(r.Pos)
		e.time(r.After)
		e.u32(uint32(len(r.Raw)))
		e.b = append(e.b, r.Raw...)
	}
	if v >= Version2 {
		e.time(m.PrimaryNewest)
	}
	return e.b
}

// decodeBatch decodes a batch of protocol version v. Record bytes alias b.
func decodeBatch(b []byte, v uint8) (batch, error) {
	d := dec{b: b}
	var m batch
	m.Epoch = d.u64()
	m.Seq = d.u64()
	m.Evicted = d.time()
	n := d.u32()
	if n > maxRecords {
		return batch{}, fmt.Errorf("%w: batch of %d records", ErrProtocol, n)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		r := batchRecord{Pos: d.pos(), After: d.time()}
		r.Raw = d.bytes(int(d.u32()))
		m.Records = append(m.Records, r)
	}
	if v >= Version2 {
		m.PrimaryNewest = d.time()
	}
	if err := d.done(); err != nil {
		return batch{}, fmt.Errorf("batch: %w", err)
	}
	return m, nil
}

func (m *ack) encode() []byte {
	var e enc
	e.u64(m.Seq)
	e.pos(m.Pos)
	e.time(m.Newest)
	return e.b
}

func decodeAck(b []byte) (ack, error) {
	d := dec{b: b}
	m := ack{Seq: d.u64(), Pos: d.pos(), Newest: d.time()}
	if err := d.done(); err != nil {
		return ack{}, fmt.Errorf("ack: %w", err)
	}
	return m, nil
}

func (m *errorMsg) encode() []byte {
	var e enc
	e.u8(m.Code)
	e.str(m.Text)
	return e.b
}

func decodeError(b []byte) (errorMsg, error) {
	d := dec{b: b}
	m := errorMsg{Code: d.u8(), Text: d.str()}
	if err := d.done(); err != nil {
		return errorMsg{}, fmt.Errorf("error message: %w", err)
	}
	return m, nil
}

// writeFrame writes one message: header then payload.
func writeFrame(w io.Writer, version, typ uint8, payload []byte) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("mirror: message of %d bytes over the %d limit", len(payload), maxPayload)
	}
	buf := make([]byte, frameHeaderSize, frameHeaderSize+len(payload))
	copy(buf, frameMagic)
	buf[2] = version
	buf[3] = typ
	binary.BigEndian.PutUint32(buf[4:], uint32(len(payload)))
	buf = append(buf, payload...)
	_, err := w.Write(buf)
	return err
}

// frame is one message read from the wire.
type frame struct {
	Version, Type uint8
	Payload       []byte
}

// readFrame reads one message.
func readFrame(r io.Reader) (frame, error) {
	var h [frameHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	if string(h[:2]) != frameMagic {
		return frame{}, fmt.Errorf("%w: bad magic %x", ErrProtocol, h[:2])
	}
	f := frame{Version: h[2], Type: h[3]}
	if f.Version == 0 {
		return frame{}, fmt.Errorf("%w: version 0", ErrProtocol)
	}
	if f.Type < msgHello || f.Type > msgError {
		return frame{}, fmt.Errorf("%w: message type %d", ErrProtocol, f.Type)
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > maxPayload {
		return frame{}, fmt.Errorf("%w: message of %d bytes over the %d limit", ErrProtocol, n, maxPayload)
	}
	// Grow the buffer as bytes arrive: a length alone costs no memory.
	buf := bytes.NewBuffer(make([]byte, 0, min(int(n), 1<<20)))
	if _, err := io.CopyN(buf, r, int64(n)); err != nil {
		return frame{}, fmt.Errorf("%w: message body: %v", ErrProtocol, err)
	}
	f.Payload = buf.Bytes()
	return f, nil
}
