// Package recorder records IP cameras into the ring store: one Session per
// camera pulls its RTSP stream (gortsplib, over TCP by default, UDP or
// multicast on request; basic and digest auth), depacketizes H.264/H.265
// video and AAC (generic and LATM), G.711 and Opus audio, stamps every access
// unit with wall-clock time, and appends it to the camera's store stream
// through FrameWriter (what *ringstore.StreamWriter offers). A Manager owns
// the sessions of many cameras and adds, updates and removes them at runtime.
//
// # What a session guarantees the store
//
//   - Recording of every connection starts at a video keyframe (audio waits
//     for it too); every keyframe carries its parameter sets in-band, and
//     SetTracks is called with new parameter sets before the first keyframe
//     that uses them, so every span exports on its own.
//   - Frame data is AVCC for video (4-byte big-endian NALU lengths), one raw
//     access unit for AAC (Track.Config[0] is the AudioSpecificConfig),
//     G.711 samples, one Opus packet. Track IDs are the index of the track
//     in the connection's track table (video first when the SDP lists it
//     first).
//   - Frame.Time is presentation time on the wall clock: RTP time anchored
//     at the camera's NTP time (RTCP sender reports) when that is within
//     Options.MaxCameraClockSkew of the local clock, else at the local
//     arrival time; unwrapped across the 32-bit wrap; slewed by at most
//     Options.ClockSlew toward the reference so drift never accumulates.
//     Decoding time (Time - DTSOffset) never goes backwards within a track,
//     which is what the store checks; Time does too unless the camera sends
//     B-frames.
//   - Gaps are marked when frames were appended since the previous mark:
//     GapCameraOffline when the connection fails or ends, GapStall when the
//     session stays open but sends no video for Options.StallTimeout,
//     GapTimestampJump when the RTP clock jumps (beyond
//     Options.JumpThreshold, or backwards by more than a second; the track
//     re-anchors), GapDropped when the store answers ErrBackpressure or
//     refuses a frame (frames are then dropped up to the next keyframe,
//     whole GOPs, and counted). After every gap recording resumes at a
//     keyframe. Frame times never go back, across reconnects included.
//   - Access units hold at most 25 NALUs (what store readers accept): SEI,
//     delimiters and filler are dropped first when a unit has more.
//     MarkGap's time is that of the last frame recorded before the gap. A
//     stopped session marks GapCameraOffline too (it matters when the
//     Manager restarts it with a new configuration).
//
// # Concurrency and lifetimes
//
// Session.Run does its work on the calling goroutine; each connection adds
// the RTSP client's goroutines and one of the seam's, all ended and joined
// before the connection attempt returns. Status may be called from any
// goroutine. The RTSP reader hands access units to the session goroutine
// through a queue bounded in units and bytes (Options.QueueLength,
// QueueBytes), so memory per camera is bounded; a session never waits on
// another, and the store's Append never waits for I/O. A panic in a
// depacketizer (bytes from the camera) costs that packet and counts as a
// decode error; a panic in the session ends the connection, counts in
// Status.Panics, and is retried with backoff; a panic that escapes Run is
// recovered by the Manager, which restarts the session with backoff.
// Manager methods are safe for concurrent use; Manager.Close stops and joins
// every session.
//
// rtsp.go is the only file that imports gortsplib (v4), behind the
// connector/camConn seam.
//
// # The TCP fast path
//
// Over TCP (the default), the video track's RTP does not go through
// gortsplib: demuxConn (tcpdemux.go), the RTSP client's connection, follows
// the stream's framing exactly as gortsplib's reader does and hands that
// track's interleaved frames straight from its read buffer to a
// videoAssembler (rtpvideo.go), which copies each payload byte once into a
// pooled buffer per access unit; the session gives the buffer back once the
// store has copied the frame. RTSP replies, RTCP and audio reach gortsplib
// byte for byte. Both parts are differential-fuzzed against gortsplib
// (FuzzDemuxConn, FuzzVideoAssembler). When the stream is not what
// gortsplib would parse, demuxConn hands over the rest as it came and
// gortsplib's own depacketizers take over. This halved the recorder's CPU
// per camera: gortsplib allocates every packet, and most of the rest was
// garbage collection.
package recorder
