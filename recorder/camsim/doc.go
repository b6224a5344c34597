// Package camsim is a camera simulator: an RTSP server that serves any number
// of paths, each an IP camera looping a test clip (testdata/clips) forever,
// with fault switches for the recorder's tests, the demo and the benchmark.
//
// # Streams
//
// Each path has a video track (H.264 or H.265, 25 fps, a keyframe every
// second) and optionally an audio track (AAC from the clip, or a synthesized
// G.711 mu-law tone). A path's timeline starts when the simulator starts
// (or when the path is added to a running simulator, or comes back from the
// restart fault) and runs on the wall clock: frame n is captured at start + n*40 ms and carries RTP timestamp
// base + n*3600. RTP timestamps and sequence numbers continue across loops
// of the clip. RTCP sender reports map each track's RTP time to the wall
// clock, one as soon as a reader plays and then every SenderReportPeriod.
// Every keyframe carries the parameter sets in-band (and the SDP has them).
// A target bitrate is reached by appending a filler NAL unit (H.264 type 12,
// H.265 type 38) to every frame.
//
// Clips are packetized once per (clip, bitrate) and the RTP payloads are
// shared by every path; a path only writes headers. A path sends nothing
// while no reader plays it, but its timeline runs on, like a camera's.
//
// # Faults
//
// Fault (or POST /paths/NAME/fault on the HTTP control endpoint) switches a
// fault on a path: drop, stall, jump, jump-ntp, params, malformed,
// refuse-auth, never-answer, restart, clear (see FaultKind). Stats and SentFrames
// report what each path sent, so a test can compare what a recorder kept
// with what was sent between two instants.
//
// # Concurrency
//
// A Simulator is safe for concurrent use. Each running path has one pump
// goroutine that owns its RTP state and sends in real time; the RTSP server
// (gortsplib, used only in rtsp.go) runs its own goroutines per connection
// and session. Start binds them to its context; Close stops and joins all of
// them and is idempotent.
package camsim
