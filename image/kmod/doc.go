// Package kmod resolves the kernel modules the appliance image needs, with
// their dependencies, from a kernel's module tree (as unpacked from Debian's
// linux-image package), and writes the modules.dep and modules-load.d files
// that u-root's init (pkg/kmodule) reads at boot.
//
// Debian's package carries no modules.dep (depmod runs in its postinst), so
// Generate derives it the way depmod's output reads: each module's direct
// dependencies come from the "depends=" field of its ELF .modinfo section
// (written by modpost at kernel build time). ParseDep reads an existing
// modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko" lines) instead.
//
// Module names match with '-' and '_' treated alike, as the kernel does.
//
// Concurrency: all functions are pure or read-only on the file system and
// safe for concurrent use; a Dep is not safe for concurrent mutation.
package kmod
