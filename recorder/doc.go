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
//     Decoding time (Time - DTSOffset) never goes backwards within a track;
//     Time does too unless the camera sends B-frames. (With B-frames the
//     store must check monotonic decoding time, not Time: as of this
//     writing it checks Time and answers ErrNonMonotonic, and the session
//     drops those frames and counts them.)
//   - Gaps are marked when frames were appended since the previous mark:
//     GapCameraOffline when the connection fails or ends, GapStall when the
//     session stays open but sends no video for Options.StallTimeout,
//     GapTimestampJump when the RTP clock jumps (beyond
//     Options.JumpThreshold, or backwards by more than a second; the track
//     re-anchors), GapDropped when the store answers ErrBackpressure (frames
//     are then dropped up to the next keyframe, whole GOPs, and counted).
//     MarkGap's time is that of the last frame recorded before the gap. A
//     stopped session marks GapCameraOffline too (it matters when the
//     Manager restarts it with a new configuration).
//
// # Concurrency and lifetimes
//
// Session.Run owns one goroutine per connection attempt plus the RTSP
// client's own, all ended and joined before Run returns; Status may be called
// from any goroutine. The RTSP reader hands access units to the session
// goroutine through a bounded queue (Options.QueueLength), so memory per
// camera is bounded and one camera never blocks another. Panics in the
// depacketizers (bytes from the camera) and in a session are recovered: the
// connection is dropped, counted in Status.Panics, and retried with backoff.
// Manager methods are safe for concurrent use; Manager.Close stops and joins
// every session.
//
// rtsp.go is the only file that imports gortsplib (v4), behind the
// connector/camConn seam.
package recorder
