// Command smokeoff is the QEMU smoke boot's /bin/defaultsh: u-root's init
// runs it once nvrd has exited. It gives init (which copies its children's
// output to the consoles through a pipe) a second, writes its own line
// straight to the serial console and waits until the console has
// transmitted everything (tcdrain), so that no output is lost at power-off,
// then syncs and powers the VM off.
package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// console is the serial console the smoke test reads.
const console = "/dev/ttyS0"

func main() {
	time.Sleep(time.Second)
	f, err := os.OpenFile(console, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "smokeoff: %v\n", err)
	} else {
		fmt.Fprintln(f, "smokeoff: powering off")
		// TCSBRK with a non-zero argument is tcdrain.
		_ = unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
		f.Close()
	}
	time.Sleep(200 * time.Millisecond)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "smokeoff: power off: %v\n", err)
		os.Exit(1)
	}
}
