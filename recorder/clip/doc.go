// Package clip exports a time range of one recorded stream as one standard
// progressive MP4 (ftyp, moov, mdat) that ffmpeg and common players open.
//
// # Design
//
// An export takes two passes over the store. Prepare reads the range once
// and keeps only each frame's time, DTS offset, size and key flag (24 bytes
// a frame: an hour of 30 fps video with 50 fps audio holds about 25 MB of
// tables), then renders the MP4 header with mediacommon's pmp4 muxer, so the
// clip's exact size is known before a byte is written (Content-Length, HTTP
// Range). Plan.Write and Plan.WriteRange read the range again and stream the
// payloads into mdat; frames are never all held in memory (frames read ahead
// of the muxer's interleaving order wait in a bounded queue). Each frame read
// in the second pass is checked against the first (time and size): footage
// evicted in between fails the export with ErrSourceChanged.
//
// # What the file holds
//
//   - The clip starts at the first video keyframe at or before From (the
//     store starts reads there); that keyframe's presentation time is time 0.
//     Audio before it and video before the first keyframe are dropped.
//   - Each frame lasts until the next frame of its track (decoding times are
//     presentation time minus Frame.DTSOffset; composition offsets go to
//     ctts), the last frame as long as the one before. Gaps inside the range
//     (ReadFrame.Gap, listed in Plan.Gaps) therefore keep real time: the
//     picture before a gap stays on screen until footage resumes, and the
//     tracks stay in sync.
//   - H.264 is written as avc1, H.265 as hvc1 (pmp4 writes hev1; the header
//     is patched, see hvc1.go), with parameter sets from Track.Config, or
//     from the first keyframe when the configuration has none. AAC is
//     mp4a, Opus is Opus.
//   - G.711 (PCMU/PCMA) tracks are omitted and listed in Plan.Omitted: MP4
//     has no G.711 sample entry pmp4 or browsers support (ulaw/alaw are
//     QuickTime sample entries), and we do not transcode.
//   - A change of an exported track's codec parameters inside the range
//     (ReadFrame.Tracks with a different Config) cuts the clip before the
//     change: Plan.CutAt and Plan.CutReason (ErrParamsChanged) say so, and the
//     rest of the range is another clip starting at CutAt. pmp4 writes one
//     sample description per track, and in-band parameter changes under
//     avc1/hvc1 are not portable. The size and duration limits of a 32-bit
//     MP4 (4 GiB, 13 h at 90 kHz) cut the same way (ErrSizeLimit).
//
// # Concurrency
//
// Prepare, Write and Plan methods run on the caller's goroutine and start no
// goroutines. A Plan may be written many times, one write at a time; the
// Source must allow a reader to be opened while the caller holds no other.
package clip
