// Package faultfs wraps a vfs.FS to inject faults: operations matching a
// predicate fail with a chosen error (every time, or only the Nth time),
// hang until released (a stalled fdatasync), or are dropped while reporting
// success (a disk that ignores flushes). It counts every operation by
// kind, and the faults it injected.
//
// Concurrency: an FS and its files are safe for concurrent use; rules can be
// changed while operations run. A hung operation blocks its caller until
// Release; it holds no lock while blocked.
package faultfs
