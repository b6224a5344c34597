// Package clip exports a time range of one recorded stream as one standard
// progressive MP4 (ftyp, moov, mdat) that ffmpeg and common players open.
//
// # Design
//
// An export takes two passes over the store. Prepare reads the range once
// and keeps only each frame's time, DTS offset, size and key flag, then
// renders the MP4 header with mediacommon's pmp4 muxer (once, with empty
// payloads: the bytes before the first payload are the header, the order the
// payloads are asked for is the mdat interleaving), so the clip's exact size
// is known before a byte is written (Content-Length, HTTP Range). A prepared
// Plan holds about 30 bytes a frame (24 B of frame table, 1 B of mdat order,
// the header's sample tables): 4.6 MB for an hour of 25 fps video with AAC
// (measured by BenchmarkExportHour); while Prepare renders, pmp4's own tables
// add about 60 B a frame. Plan.Write and Plan.WriteRange read the range again
// and stream the payloads into mdat: frames are never all held in memory
// (frames read ahead of the interleaving order wait in a queue bounded by
// Options.MaxBuffered). WriteRange re-reads footage only from a few seconds
// before the range's first sample (from the clip's start if a track's
// decoding times ever go backwards, which valid footage never does). Each frame read in the second pass is
// checked against the first (time and size): footage evicted in between
// fails the export with ErrSourceChanged.
//
// Cache shares plans between the many Range requests a player sends for one
// export, so that each does not scan the range again.
//
// # What the file holds
//
//   - The clip starts at the last video keyframe at or before From (or the
//     first after it when there is none); that keyframe's presentation time
//     is time 0. Reads start a few seconds earlier so that audio the
//     recorder stored ahead of the video of the same time is kept; audio
//     before time 0 and video before the keyframe are dropped. Footage
//     before a gap or a parameter change that precedes From is not used.
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
//     (ReadFrame.Tracks with a different Config, or a keyframe whose in-band
//     parameter sets differ from the clip's first keyframe's) cuts the clip
//     before the change: Plan.CutAt and Plan.CutReason (ErrParamsChanged) say so, and the
//     rest of the range is another clip starting at CutAt. pmp4 writes one
//     sample description per track, and in-band parameter changes under
//     avc1/hvc1 are not portable. The size and duration limits of a 32-bit
//     MP4 (4 GiB, 13 h at 90 kHz) cut the same way (ErrSizeLimit).
//
// # Concurrency
//
// Prepare, Write and Plan methods run on the caller's goroutine and start no
// goroutines. A prepared Plan is read-only: it may be written many times,
// concurrently (one FrameReader per write), so the Source must allow
// concurrent readers, as the store does.
package clip
