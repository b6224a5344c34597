// Package qemutest is the firmware image's system test suite (make
// qemu-test): it boots the built image (out/image) under QEMU with software
// emulation and drives it like an integrator would, through the serial
// console, the HTTPS API and QEMU's monitor (QMP).
//
// The scenarios, one test each: TestConsoleRecordExport (1),
// TestPSUFault and TestBayEvent (2), TestRAIDDiskRemoved (3),
// TestWatchdogReset (4), TestSignedUpgrade (5), TestPowerCutDuringInstall
// (6).
//
// Each guest boots the image as make image built it (image/appliance as
// /bin/uinit, ext4, mdadm, the build's key as the trusted firmware key) with
// a persistent config disk (/perm) and a recording disk (/data), both ext4
// made on the host with mkfs.ext4, and an initramfs overlay with only what
// is test-only: the guest agent and the configfs module gpio-sim needs. The
// guest reaches the host's camera simulator (on 127.0.0.1) at slirp's host
// address 10.0.2.2, and the host reaches the guest's API through a hostfwd.
// Every boot logs its time to the login prompt and to the first recorded
// frame. A test-only agent (image/qemutest/agent, on a third serial port)
// plays the hardware the harness cannot reach from outside: SMBus writes to
// i2c-stub and pulls of gpio-sim lines. The A/B boot disk is played by the
// harness as the bootloader would (firmware/slots.Manager.Boot) on an ext4
// image made with mkfs.ext4 -d and read back with debugfs; scenario 5
// installs bundles with the console's "firmware install", served to the
// guest by an HTTP server on the host's 127.0.0.1.
//
// The tests run when NVR_QEMU_TEST=1 (make qemu-test, which builds the
// image and installs qemu-system-x86, e2fsprogs and ffmpeg) and need
// out/image and out/keys from make image; under CI=true a missing tool is a
// failure. Guests run one at a time (the tests are not parallel); consoles
// and nvrd logs of every boot are kept in out/image/qemutest.
package qemutest
