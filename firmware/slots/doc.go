// Package slots owns the appliance's A/B firmware slots on the boot disk: it
// installs a verified bundle (package bundle) into the slot that is not
// running, arms it for ONE trial boot, and makes it the default once the
// running system confirms it is healthy. The slot state lives in a GRUB
// environment block that image/grub/grub.cfg reads and updates at every
// boot; Decide is the same rule in Go, for the QEMU harness and the tests.
//
// # Boot directory
//
//	DIR/grubenv                  GRUB environment block (1024 bytes, see ParseEnv)
//	DIR/a/vmlinuz                slot a: kernel
//	DIR/a/initramfs.cpio.gz      slot a: initramfs
//	DIR/a/manifest.json          slot a: the bundle's manifest, written last
//	DIR/b/...                    slot b: the same files
//
// Every file is written to NAME.tmp, fsynced, renamed over NAME, and the
// directory fsynced; the environment block is replaced the same way. (GRUB's
// own save_env rewrites the block in place; both keep it one 1 KiB block.)
//
// # Environment and boot rule
//
// nvr_default names the confirmed slot; nvr_trial, when "a" or "b", names a
// slot to boot once. At power-on the bootloader (grub.cfg, or Decide):
//
//  1. if nvr_trial is a valid slot: sets nvr_trial="" and saves the block,
//     THEN boots that slot with nvr.slot=<slot> on the kernel command line;
//  2. otherwise boots nvr_default (a when missing or invalid).
//
// A trial that never confirms (panic, hang and watchdog reset, power cut)
// thus falls back to the default slot on the next boot by itself.
//
// # Caller's protocol
//
//  1. At start, read the booted slot from /proc/cmdline (BootedSlot) and open
//     a Manager on the mounted boot directory (one Manager per directory).
//  2. Once healthy (store open, cameras recording, watchdog petted), call
//     Confirm(booted). Until then the booted slot may be an unconfirmed trial.
//  3. To upgrade: open the bundle with bundle.Open (signature, board, version
//     policy), then call Install(ctx, bundle, booted, progress). Install
//     refuses while the booted slot is an unconfirmed trial (ErrUnconfirmed):
//     the other slot is the only known-good one.
//  4. Install disarms a stale trial of the target slot, removes the target's
//     manifest, writes the kernel and initramfs (re-hashing against the
//     manifest while copying: ErrBundle if the file changed since Open),
//     writes the manifest, and only then arms the trial. A power cut or error
//     at any step leaves the bootloader booting the booted slot; call Install
//     again after the reboot.
//  5. Reboot when convenient. The new slot boots once; go to 1.
//
// # Concurrency
//
// A Manager's methods are serialised by a mutex; two processes must not
// manage the same boot directory. Decide, ParseEnv and Env are pure.
package slots
