// Command smokeuinit is the QEMU smoke boot's /bin/uinit: it runs
// /bin/nvrd with its own arguments (from /etc/uinit.flags) with the output
// written straight to the serial console, then powers the VM off.
//
// u-root's init runs uinit with its output copied through a pipe to the
// consoles, and as a session leader; output written just before nvrd exits
// was sometimes lost (the console is hung up when the session leader exits,
// and a power-off does not wait for the UART). Here nvrd writes to a console
// file of its own, and the console is drained (tcdrain) before the
// power-off.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
)

// console is the serial console the smoke test reads.
const console = "/dev/ttyS0"

func main() {
	out, err := os.OpenFile(console, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		out = os.Stdout
	}
	cmd := exec.Command("/bin/nvrd", os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	status := "exit status 0"
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			status = err.Error()
		} else {
			status = ee.ProcessState.String()
		}
	}
	fmt.Fprintf(out, "smokeuinit: nvrd: %s; powering off\n", status)
	// TCSBRK with a non-zero argument is tcdrain.
	_ = unix.IoctlSetInt(int(out.Fd()), unix.TCSBRK, 1)
	time.Sleep(200 * time.Millisecond)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(out, "smokeuinit: power off: %v\n", err)
		os.Exit(1)
	}
}
