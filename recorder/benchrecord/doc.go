// Command benchrecord is `make bench-record`: it measures what recording N
// simulated cameras costs three recorders, one after another, against the
// same camera simulator (`nvrd camsim` as a separate process, 4 Mbit/s
// H.264 at 25 fps per camera, on loopback):
//
//   - ffmpeg, one process per camera, `-c copy -f segment` into 10 s MP4
//     segments (how Frigate records);
//   - MediaMTX v1.15.3 (built by recorder/interop) pulling every camera
//     (`source: rtsp://...`) with `record: yes` (fMP4 segments of 10 s);
//   - ours: `nvrd run --data DIR --camera ...` into a freshly formatted
//     ring store.
//
// For each recorder it waits a warm-up, then measures over a window: CPU
// seconds per camera per second (utime+stime of all the recorder's
// processes from /proc/PID/stat), resident memory per camera (VmRSS from
// /proc/PID/status at the window's end, summed), and the simulator's own
// CPU over the same window, reported apart. After the recorder stops it
// counts the frames kept over the whole run (ours: video frames in the
// store; ffmpeg and MediaMTX: video packets in their segments, by ffprobe)
// against the frames the simulator sent over the run (its per-path
// counters, which only advance while a reader plays). Each connection
// starts recording at a keyframe, so up to a GOP (24 frames) per camera is
// not kept by design. For ours it also compares, exactly, the frames stored
// with a time inside the window with those the simulator captured inside it
// (its frame history, by capture time): any difference is a frame lost or
// misplaced in time.
//
// Processes it starts are stopped (SIGINT, then SIGKILL) before it moves
// on, and on SIGINT.
package main
