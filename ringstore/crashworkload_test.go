package ringstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"
)

// This file is the crash harness's deterministic workload: camera streams
// of small frames whose bytes say who they are, so that a frame read back
// after a crash can be checked byte for byte against what was appended.

// crashBase returns the wall-clock time the workload's footage starts at.
func crashBase() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// crashFrameMagic starts every workload frame's identity header.
const crashFrameMagic = "CRSH"

// crashFrameID names one appended frame: its stream and its place in the
// stream's append order (all tracks together).
type crashFrameID struct {
	Stream int
	Idx    uint64
}

// crashFrame is one frame the workload appends.
type crashFrame struct {
	ID       crashFrameID
	Frame    Frame
	TableVer int    // the stream's track table in force (index into workload.tables)
	Seq      uint64 // the store's append seq; 0 until appended
	Tick     int
}

// crashWorkloadSpec parameterises the workload.
type crashWorkloadSpec struct {
	Seed    uint64
	Streams int // number of camera streams (cam0, cam1, ...)
	Ticks   int // commit ticks; each ends with Flush
}

// crashTickPlan is what one stream does in one tick, in order: an optional gap,
// an optional track table change, then frames.
type crashTickPlan struct {
	Stream   int
	Gap      bool      // MarkGap(GapCameraOffline, GapAt) first
	GapAt    time.Time // when the gap starts
	NewTable bool      // SetTracks(tables[Stream][TableVer]) before the frames
	Frames   []*crashFrame
}

// workload is the whole planned recording.
type crashWorkload struct {
	spec   crashWorkloadSpec
	names  []string
	tables [][][]Track       // per stream, each version of its track table
	ticks  [][]crashTickPlan // per tick, per stream
	frames []*crashFrame     // every frame, in append order
	byID   map[crashFrameID]*crashFrame
	last   time.Time // after every frame's time
}

func crashStreamName(i int) string { return fmt.Sprintf("cam%d", i) }

// crashTrackTable returns stream s's track table, version v: H.264 (even
// streams) or H.265 video with parameter sets naming s and v, and AAC audio
// on every other stream.
func crashTrackTable(s, v int) []Track {
	tag := []byte{byte(s), byte(v), byte(v >> 8)}
	video := Track{ID: 0, Codec: CodecH264, ClockRate: 90000,
		Config: [][]byte{append([]byte{0x67, 0x64, 0x00, 0x1f}, tag...), append([]byte{0x68, 0xee}, tag...)}}
	if s%2 == 1 {
		video.Codec = CodecH265
		video.Config = [][]byte{append([]byte{0x40, 0x01}, tag...), append([]byte{0x42, 0x01}, tag...), append([]byte{0x44, 0x01}, tag...)}
	}
	ts := []Track{video}
	if s%2 == 0 {
		ts = append(ts, Track{ID: 1, Codec: CodecAAC, ClockRate: 48000, Channels: 1, Config: [][]byte{{0x11, 0x88, byte(v)}}})
	}
	return ts
}

// crashFrameData returns the bytes of frame id: for video an AVCC access unit of
// one NALU, for audio a raw unit; both start with the identity header
// (magic, stream, index, track) followed by pseudo-random payload.
func crashFrameData(id crashFrameID, track uint8, video, key bool, size int) []byte {
	hdr := binary.BigEndian.AppendUint64(append([]byte(crashFrameMagic), byte(id.Stream), track), id.Idx)
	body := make([]byte, max(size, len(hdr)))
	copy(body, hdr)
	rng := rand.New(rand.NewPCG(uint64(id.Stream)<<56|id.Idx, uint64(track)))
	for i := len(hdr); i < len(body); i++ {
		body[i] = byte(rng.Uint32())
	}
	if !video {
		return body
	}
	nal := byte(0x41)
	if key {
		nal = 0x65
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)+1))
	out = append(out, nal)
	return append(out, body...)
}

// crashParseID recovers a frame's identity from its data; ok is false for
// bytes that are not a workload frame.
func crashParseID(data []byte) (crashFrameID, bool) {
	i := bytes.Index(data, []byte(crashFrameMagic))
	if i < 0 || i > 5 || len(data) < i+len(crashFrameMagic)+10 {
		return crashFrameID{}, false
	}
	b := data[i+len(crashFrameMagic):]
	return crashFrameID{Stream: int(b[0]), Idx: binary.BigEndian.Uint64(b[2:10])}, true
}

// planCrashWorkload draws the whole workload from spec.Seed.
func planCrashWorkload(spec crashWorkloadSpec) *crashWorkload {
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	w := &crashWorkload{spec: spec, byID: map[crashFrameID]*crashFrame{}}
	clock := make([]time.Time, spec.Streams)
	audio := make([]time.Time, spec.Streams)
	sinceKey := make([]int, spec.Streams)
	lastDTS := make([]time.Time, spec.Streams) // decoding time never goes back, as with real B-frames
	next := make([]uint64, spec.Streams)
	for s := range spec.Streams {
		w.names = append(w.names, crashStreamName(s))
		w.tables = append(w.tables, [][]Track{crashTrackTable(s, 0)})
		clock[s] = crashBase().Add(time.Duration(s) * 7 * time.Millisecond)
		audio[s] = clock[s]
	}
	for tick := range spec.Ticks {
		plans := make([]crashTickPlan, spec.Streams)
		for s := range spec.Streams {
			p := crashTickPlan{Stream: s, NewTable: tick == 0}
			forceKey := tick == 0
			if tick > 0 && rng.IntN(40) == 0 {
				p.Gap, p.GapAt = true, clock[s]
				clock[s] = clock[s].Add(time.Duration(2+rng.IntN(5)) * time.Second)
				forceKey = true
			}
			if tick > 0 && rng.IntN(60) == 0 {
				w.tables[s] = append(w.tables[s], crashTrackTable(s, len(w.tables[s])))
				p.NewTable, forceKey = true, true
			}
			for range 1 + rng.IntN(3) {
				key := forceKey || sinceKey[s] >= 7
				forceKey = false
				size := 400 + rng.IntN(2600)
				if key {
					size = 5000 + rng.IntN(6000)
					sinceKey[s] = 0
				} else {
					sinceKey[s]++
				}
				id := crashFrameID{Stream: s, Idx: next[s]}
				next[s]++
				off := time.Duration(rng.IntN(3)) * 40 * time.Millisecond
				if dts := clock[s].Add(-off); dts.Before(lastDTS[s]) {
					off = clock[s].Sub(lastDTS[s])
				}
				lastDTS[s] = clock[s].Add(-off)
				p.Frames = append(p.Frames, &crashFrame{ID: id, TableVer: len(w.tables[s]) - 1, Tick: tick, Frame: Frame{
					Track: 0, Time: clock[s], Key: key, Data: crashFrameData(id, 0, true, key, size),
					DTSOffset: off,
				}})
				if s%2 == 0 {
					audio[s] = crashMaxTime(audio[s], clock[s])
					for range rng.IntN(3) {
						audio[s] = audio[s].Add(21 * time.Millisecond)
						id := crashFrameID{Stream: s, Idx: next[s]}
						next[s]++
						p.Frames = append(p.Frames, &crashFrame{ID: id, TableVer: len(w.tables[s]) - 1, Tick: tick, Frame: Frame{
							Track: 1, Time: audio[s], Key: true, Data: crashFrameData(id, 1, false, true, 100+rng.IntN(300)),
						}})
					}
				}
				clock[s] = clock[s].Add(40 * time.Millisecond)
			}
			for _, f := range p.Frames {
				w.frames = append(w.frames, f)
				w.byID[f.ID] = f
				w.last = crashMaxTime(w.last, f.Frame.Time)
			}
			plans[s] = p
		}
		w.ticks = append(w.ticks, plans)
	}
	w.last = w.last.Add(time.Second)
	return w
}

func crashMaxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// bytes returns the workload's total frame bytes.
func (w *crashWorkload) bytes() int64 {
	var n int64
	for _, f := range w.frames {
		n += int64(len(f.Frame.Data))
	}
	return n
}
