// Command appliance is the firmware image's /bin/uinit: what the appliance
// needs at boot beyond u-root's init (which has already mounted /dev, /proc
// and /sys and loaded the modules of /lib/modules-load.d). It
//
//  1. waits for the disks and assembles the md RAID1 recording array,
//  2. mounts the persistent config volume at /perm and the recording volume
//     at /data (ext4), formatting the ring store on a fresh recording volume,
//  3. installs a firmware bundle from an update disk when one is given
//     (verified against /etc/nvr/firmware.pub, then a reboot into the trial),
//  4. configures the network when the kernel command line says how,
//  5. and replaces itself with `nvrd run --appliance ...`.
//
// Its settings come from the kernel command line (the bootloader's, or the
// QEMU test's -append), each with a default that fits the appliance:
//
//	nvr.perm=DEV          config volume (default /dev/vda)
//	nvr.data=DEV          recording volume (default /dev/vdb, or /dev/md0 with nvr.raid)
//	nvr.raid=DEV,DEV      assemble DEV,DEV as the RAID1 /dev/md0 with /sbin/mdadm,
//	                      creating it (metadata 1.0, at the end: the members' data
//	                      start at 0) when they carry no superblock yet
//	nvr.boot=DEV          boot disk with the A/B slots, mounted on /boot (default none)
//	nvr.update=DEV        a disk (USB stick) holding bundle.nvrfw: installed into the
//	                      inactive slot at boot, then the appliance reboots into it
//	nvr.net=IF,ADDR/LEN,GW   static address and default route (default none)
//	nvr.log=DEV           nvrd's log output (default /dev/console)
//	nvr.args=A,B,...      extra arguments for nvrd run (e.g. --test-faults)
//	nvr.board=NAME        board profile (default qemu)
//	nvr.agent=PATH        TEST ONLY: start PATH in the background before nvrd (the
//	                      QEMU suite's hardware helper, image/qemutest/agent)
//
// Any failure is printed on the console with "appliance: " and leaves the
// rescue shell to u-root's init.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// nvrd is the firmware binary in the image.
const nvrd = "/bin/nvrd"

func main() {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fail(fmt.Errorf("read the kernel command line: %w", err))
	}
	cfg, err := parseCmdline(string(raw))
	if err != nil {
		fail(err)
	}
	if err := boot(cfg); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "appliance: %v\n", err)
	os.Exit(1)
}

// boot runs the boot steps and execs nvrd; it returns only on failure.
func boot(cfg config) error {
	start := time.Now()
	devs := []string{cfg.perm}
	if len(cfg.raid) == 0 {
		devs = append(devs, cfg.data)
	}
	devs = append(devs, cfg.raid...)
	for _, d := range []string{cfg.boot, cfg.update} {
		if d != "" {
			devs = append(devs, d)
		}
	}
	if err := waitDevices(devs, 20*time.Second); err != nil {
		return err
	}
	if len(cfg.raid) > 0 {
		if err := assembleRAID(cfg.data, cfg.raid); err != nil {
			return err
		}
	}
	if cfg.boot != "" {
		if err := mountExt4(cfg.boot, "/boot"); err != nil {
			return err
		}
	}
	if cfg.update != "" {
		if err := installUpdate(cfg); err != nil {
			// A refused bundle leaves the slots alone: boot on.
			fmt.Fprintf(os.Stderr, "appliance: update refused: %v\n", err)
		}
	}
	if err := mountExt4(cfg.perm, "/perm"); err != nil {
		return err
	}
	if err := os.MkdirAll("/perm/nvr", 0o700); err != nil {
		return fmt.Errorf("create /perm/nvr: %w", err)
	}
	if err := mountExt4(cfg.data, "/data"); err != nil {
		return err
	}
	if err := formatStore("/data"); err != nil {
		return err
	}
	if cfg.net != nil {
		if err := configureNetwork(*cfg.net); err != nil {
			return err
		}
	}
	if cfg.agent != "" {
		// Test only (image/qemutest): left running beside nvrd.
		agent := exec.Command(cfg.agent)
		agent.Stdout, agent.Stderr = os.Stderr, os.Stderr
		if err := agent.Start(); err != nil {
			return fmt.Errorf("start the test agent %s: %w", cfg.agent, err)
		}
		// It sets up simulated hardware nvrd binds at start.
		if err := waitDevices([]string{"/run/qemutest-agent.ready"}, 10*time.Second); err != nil {
			return fmt.Errorf("test agent: %w", err)
		}
	}
	args := nvrdArgs(cfg)
	fmt.Fprintf(os.Stderr, "appliance: volumes mounted in %v; exec %s\n", time.Since(start).Round(time.Millisecond), strings.Join(args, " "))
	if cfg.log != "" {
		if f, err := os.OpenFile(cfg.log, os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			_ = unix.Dup2(int(f.Fd()), 1)
			_ = unix.Dup2(int(f.Fd()), 2)
		}
	}
	return fmt.Errorf("exec nvrd: %w", unix.Exec(nvrd, args, os.Environ()))
}

// nvrdArgs is nvrd's command line.
func nvrdArgs(cfg config) []string {
	args := []string{nvrd, "run", "--appliance",
		"--config", "/perm/nvr/config.db", "--data", "/data",
		"--console", "/dev/ttyS0",
		"--api", ":443", "--api-tls-dir", "/perm/nvr/tls",
		"--board", cfg.board, "--boot-count", "/perm/nvr/bootcount",
	}
	if cfg.boot != "" {
		args = append(args, "--slots-dir", "/boot")
	}
	return append(args, cfg.args...)
}

// waitDevices waits for every device node to exist (drivers probe
// asynchronously after their module loads).
func waitDevices(devs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, d := range devs {
		for {
			if _, err := os.Stat(d); err == nil {
				break
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("disk %s: %w", d, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("disk %s did not appear within %v", d, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// mountExt4 mounts dev (ext4) at dir.
func mountExt4(dev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", dir, err)
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_NOATIME, ""); err != nil {
		return fmt.Errorf("mount %s (ext4) on %s: %w", dev, dir, err)
	}
	return nil
}
