// Package mkimage builds the appliance's firmware image: the kernel (Debian's
// vmlinuz, plus the uncompressed vmlinux for QEMU), an initramfs made with
// u-root's builder used as a library (mkuimage), and the signed bundle that
// carries both (package firmware/bundle).
//
// The initramfs holds u-root's init and a busybox of rescue commands (pinned
// by the image/rescue module), nvrd built with the version stamped in, and
// the kernel modules the appliance needs with their dependencies
// (image/kmod), which u-root's init loads at boot from
// /lib/modules-load.d/nvr.conf. init then runs /bin/uinit, a link to
// /bin/nvrd, with the arguments in /etc/uinit.flags (Options.Uinit); when
// nvrd exits, init starts the rescue shell on the console.
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
