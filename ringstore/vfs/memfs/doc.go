// Package memfs is an in-memory vfs.FS for crash tests. It implements the
// durability contract of package vfs exactly, and tracks what a power cut
// would keep:
//
//   - File data is tracked in 512-byte sectors. Every WriteAt is remembered,
//     as the images of the sectors it touched, until a Datasync or Sync of the
//     file makes it durable. Preallocate extends a file; the new length is
//     durable only after Sync (Datasync makes durable the length up to the
//     end of the last write).
//   - Directory entries (Create, Rename, Remove, and the directories MkdirAll
//     makes) are volatile until SyncDir of their parent directory.
//
// CrashClone returns the file system a power cut at this moment could leave
// behind, in one of several variants (CrashOptions). SetHook registers a
// function called before every mutating operation, so a test can take a crash
// state at each of them; Freeze makes every later operation fail, as if the
// process had died.
//
// Concurrency: an FS and its files are safe for concurrent use; one mutex
// guards the whole tree. The hook runs on the goroutine making the operation,
// before the operation and without the mutex held, so it may call CrashClone.
package memfs
