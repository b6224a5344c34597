// Package mkimage builds the appliance's firmware image: the kernel (Debian's
// vmlinuz, plus the uncompressed vmlinux for QEMU), an initramfs made with
// u-root's builder used as a library (mkuimage), and the signed bundle that
// carries both (package firmware/bundle).
//
// The initramfs holds u-root's init and a busybox of rescue commands (pinned
// by the image/rescue module), nvrd built with the version stamped in,
// image/appliance (/bin/uinit links to it: it mounts the volumes, assembles
// the RAID1 array and execs nvrd run --appliance), Debian's mdadm with the
// shared libraries and loader its ELF header names (from an unpacked
// Debian root, Options.UserlandRoot, made by image/fetch-userland.sh), the
// public key of the build's signing key as the trusted firmware key
// (/etc/nvr/firmware.pub: the image accepts the bundles its build signs),
// and the kernel modules the appliance needs with their dependencies
// (image/kmod), which u-root's init loads at boot from
// /lib/modules-load.d/nvr.conf. When the appliance fails, init starts the
// rescue shell on the console.
//
// # Reproducibility
//
// The same inputs give the same bytes: Go builds use -trimpath and no VCS
// stamping, the cpio archive has sorted entries with zero mtimes and fixed
// owners (mkuimage's MakeReproducible), gzip has no name or time, the
// manifest carries no time, and ed25519 signatures are deterministic.
// TestReproducible builds twice and compares SHA-256s.
//
// Concurrency: Build runs one build; concurrent Builds need distinct
// OutDir and WorkDir.
package mkimage
