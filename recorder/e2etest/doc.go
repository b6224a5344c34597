// Package e2etest holds the recorder's end-to-end tests on loopback: a
// camera (the simulator, or MediaMTX fed by ffmpeg) recorded through the
// recorder Manager into a real ring store, exported with recorder/clip, and
// checked with ffprobe (frame count against what was sent, monotonic
// timestamps, duration). It has no non-test code.
//
// The tests need ffmpeg and ffprobe (a test fails without them when CI=true,
// and is skipped otherwise) and build MediaMTX from its module sources once
// (recorder/interop caches the binary; a build failure fails the test).
// Subtests run in parallel; each owns its simulator or server, store and
// Manager, and stops them before it returns.
package e2etest
