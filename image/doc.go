// Package image holds the firmware image's build and boot tests; the image
// itself is built by image/cmd/mkimage (package image/mkimage) from Debian's
// kernel (image/fetch-kernel.sh), the u-root commands pinned by
// image/rescue, and nvrd. image/grub/grub.cfg is the A/B boot script; it
// implements firmware/slots.Decide.
//
// TestQEMUSmoke (make qemu-smoke) plays the bootloader with firmware/slots on
// a temporary boot directory, boots the built image under QEMU (software
// emulation, serial console on a socket), waits for nvrd's marker, and
// powers the VM off; a broken trial must fall back. TestGRUBBoot does the
// same through a real GRUB booted from a BIOS disk that grub/mkdisk.sh
// builds from a boot directory (the appliance's boot disk layout). Both run
// when NVR_QEMU_SMOKE=1 or CI=true; they need qemu-system-x86, grub-common,
// grub-pc-bin, mtools and dosfstools.
package image
