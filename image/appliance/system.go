package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// formatStore formats the ring store on a recording volume that has none
// (first boot), using 3/4 of the file system's free space.
func formatStore(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "VOLUME")); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recording volume: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	mib := st.Bavail * uint64(st.Bsize) / 4 * 3 >> 20
	if mib < 64 {
		return fmt.Errorf("recording volume %s has only %d MiB free", dir, mib)
	}
	cmd := exec.Command(nvrd, "store", "format", "--data", dir, "--size", fmt.Sprintf("%dM", mib))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("format the ring store on %s: %w", dir, err)
	}
	fmt.Fprintf(os.Stderr, "appliance: formatted a %d MiB ring store on %s\n", mib, dir)
	return nil
}

// configureNetwork sets a static address, brings the link up and adds the
// default route.
func configureNetwork(n netConfig) error {
	link, err := netlink.LinkByName(n.ifname)
	if err != nil {
		return fmt.Errorf("network interface %s: %w", n.ifname, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.addr.Addr().AsSlice(), Mask: net.CIDRMask(n.addr.Bits(), n.addr.Addr().BitLen())}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", n.addr, n.ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", n.ifname, err)
	}
	if n.gateway.IsValid() {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: n.gateway.AsSlice()}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s: %w", n.gateway, err)
		}
	}
	return nil
}

// trustedKeys are the public keys firmware bundles must be signed with.
const trustedKeys = "/etc/nvr/firmware.pub"

// installUpdate installs /update/bundle.nvrfw from the update disk into
// the inactive slot and reboots into its trial; it returns the reason when
// the bundle is refused or cannot be installed.
func installUpdate(cfg config) error {
	if cfg.boot == "" {
		return errors.New("an update disk needs a boot disk (nvr.boot)")
	}
	if err := os.MkdirAll("/update", 0o755); err != nil {
		return fmt.Errorf("create /update: %w", err)
	}
	if err := unix.Mount(cfg.update, "/update", "ext4", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount the update disk %s: %w", cfg.update, err)
	}
	defer unix.Unmount("/update", 0)
	bundle := "/update/bundle.nvrfw"
	fmt.Fprintf(os.Stderr, "appliance: installing %s\n", bundle)
	cmd := exec.Command(nvrd, "firmware", "install", "--boot", "/boot", "--pubkey", trustedKeys, "--board", cfg.board, bundle)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nvrd firmware install: %w", err)
	}
	fmt.Fprintf(os.Stderr, "appliance: update installed; rebooting into its trial\n")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// mdadm is the RAID tool in the image.
const mdadm = "/sbin/mdadm"

// assembleRAID assembles members as the RAID1 md, creating the array on
// members that have no superblock (first boot). Metadata 1.0 sits at the end
// of each member, so a file system put on the members before (identical
// copies) is the array's content: --assume-clean skips the initial resync.
func assembleRAID(md string, members []string) error {
	if err := os.MkdirAll("/run/mdadm", 0o755); err != nil {
		return fmt.Errorf("create /run/mdadm: %w", err)
	}
	run := func(args ...string) ([]byte, error) {
		return exec.Command(mdadm, args...).CombinedOutput()
	}
	out, err := run(append([]string{"--assemble", "--run", md}, members...)...)
	if err == nil {
		fmt.Fprintf(os.Stderr, "appliance: assembled %s from %v\n", md, members)
		return nil
	}
	create := append([]string{"--create", md, "--run", "--level=1", fmt.Sprintf("--raid-devices=%d", len(members)),
		"--metadata=1.0", "--assume-clean", "--bitmap=none"}, members...)
	out2, err2 := run(create...)
	if err2 != nil {
		return fmt.Errorf("assemble %s (%v: %s) nor create it (%v: %s)", md, err, out, err2, out2)
	}
	fmt.Fprintf(os.Stderr, "appliance: created the RAID1 %s on %v\n", md, members)
	return nil
}
