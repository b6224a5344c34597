// Package interop runs third-party media tools next to our recorder, for the
// interoperability tests and the recording benchmark: it builds MediaMTX
// (an RTSP server nobody here wrote) from its module sources, runs it on
// free loopback ports with a generated configuration, and runs ffmpeg to
// publish test clips into it.
//
// # Building MediaMTX
//
// BuildMediaMTX downloads the module with `go mod download -json`, copies it
// to a temporary directory, writes the files its sources expect from `go
// generate` (internal/core/VERSION and an empty
// internal/servers/hls/hls.min.js) and runs `go build`. The binary is cached
// under the user cache directory keyed by version, so only the first run
// pays for the build; concurrent builders each build into a temporary file
// and the last atomic rename wins.
//
// # Concurrency and lifetimes
//
// Every process this package starts (Server, Publisher) belongs to the
// value that started it: Close stops it (SIGINT, then SIGKILL after a
// grace period), waits for it and joins the goroutine that waited on it;
// Close is idempotent. Values are safe for concurrent use.
package interop
