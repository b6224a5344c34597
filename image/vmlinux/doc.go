// Package vmlinux extracts the uncompressed kernel ELF (vmlinux) from an x86
// bzImage (vmlinuz), the logic of the kernel's scripts/extract-vmlinux done
// with the boot protocol header instead of a byte scan: the setup header
// (boot protocol >= 2.08) gives the compressed payload's offset and length,
// the payload's first bytes say how it is compressed. QEMU boots the ELF
// directly (PVH entry), which under software emulation reaches user space in
// about half the time of the self-decompressing bzImage.
//
// gzip is decompressed in Go; xz, zstd, lz4, bzip2 and lzma by the host's
// tools (xz, zstd, lz4, bzip2), which must be on PATH.
//
// Concurrency: functions are safe for concurrent use.
package vmlinux
