// Package bundle owns the signed firmware bundle: one file holding the
// kernel, the initramfs and a manifest, signed with ed25519. It packs bundles
// (build side) and opens them (device side), refusing with a typed error
// anything that must not be installed.
//
// # Layout (format version 1)
//
// All integers are big-endian.
//
//	offset 0          8         10        12          16              16+N        16+N+64
//	+-----------------+---------+---------+-----------+---------------+-----------+--------+--------+---
//	| magic           | format  | flags   | N         | manifest JSON | signature | part 0 | part 1 | ...
//	| "NVRFW\0\r\n"   | u16 = 1 | u16 = 0 | u32       | N bytes       | 64 bytes  | size0  | size1  |
//	+-----------------+---------+---------+-----------+---------------+-----------+--------+--------+---
//
// The signature is ed25519 over "nvrfw bundle v1\0" || header (16 bytes) ||
// manifest JSON, so the format, flags and length are covered as well. The
// manifest (see Manifest) names the version, the boards it fits, the minimum
// version it upgrades from, the build identity, the signing key's ID, and
// each part's name, size and SHA-256, in the order the parts follow the
// signature, back to back, with nothing after the last one. N is at most
// MaxManifestSize; at most MaxParts parts.
//
// # Verification
//
// Open reads the 16-byte header, the manifest and the signature (bounded
// memory), finds the trusted key the manifest names (ErrUnknownKey if none)
// and verifies the signature (ErrBadSignature), only then parses and
// validates the manifest, applies the policy (ErrWrongBoard, ErrBelowMinimum,
// ErrDowngrade), checks that the parts exactly fill the file and streams each
// part through SHA-256 in 64 KiB reads (ErrCorrupt). Nothing is loaded whole.
//
// # Versions
//
// Versions are semver-like ("1.4.0", "v2.0.0-rc.1+abc"): up to three
// numbers (missing ones are 0), an optional pre-release that sorts before the
// release, build metadata that never affects ordering. See Version.Compare.
// A bundle of the running version may be reinstalled; an older one needs
// Options.AllowDowngrade; MinVersion is always enforced.
//
// # Concurrency
//
// Functions are safe for concurrent use; a Bundle reads its parts through
// the io.ReaderAt it was opened with and is as concurrent as that reader.
package bundle
