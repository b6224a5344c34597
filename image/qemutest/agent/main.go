// Command agent is the QEMU test suite's helper inside the guest (test
// only; image/qemutest adds it to the initramfs overlay and image/appliance
// starts it when the kernel command line has nvr.agent=PATH). It plays the
// hardware the harness cannot reach from outside: it serves one command per
// line on the third serial port (/dev/ttyS2, a socket on the host) and
// answers "ok" or "error: REASON" on one line.
//
//	word ADAPTER ADDR CMD VALUE   SMBus write-word on the adapter whose name
//	                              starts with ADAPTER ("_" for a space), e.g.
//	                              word SMBus_stub 0x58 0x79 0x0840
//	byte ADAPTER ADDR CMD VALUE   SMBus write-byte-data
//
// i2c-stub keeps what is written and reads it back, which is how the tests
// load a PSU's PMBus registers and flip its STATUS_WORD.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nvrfw/nvr/board/smbus"
)

func main() {
	port := "/dev/ttyS2"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	f, err := os.OpenFile(port, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		os.Exit(1)
	}
	defer f.Close()
	if err := makeRaw(int(f.Fd())); err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(f, "agent ready\n")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := run(strings.Fields(line)); err != nil {
			fmt.Fprintf(f, "error: %v\n", err)
		} else {
			fmt.Fprintf(f, "ok\n")
		}
	}
}

// makeRaw turns off echo and line editing on the port.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func run(w []string) error {
	if len(w) != 5 || (w[0] != "word" && w[0] != "byte") {
		return fmt.Errorf("want word|byte ADAPTER ADDR CMD VALUE, got %q", strings.Join(w, " "))
	}
	bus, err := findAdapter(strings.ReplaceAll(w[1], "_", " "))
	if err != nil {
		return err
	}
	var n [3]uint64
	for i, s := range w[2:] {
		if n[i], err = strconv.ParseUint(s, 0, 16); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
	}
	d, err := smbus.Open(bus, uint16(n[0]), smbus.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	if w[0] == "byte" {
		return d.WriteByteData(byte(n[1]), byte(n[2]))
	}
	return d.WriteWordData(byte(n[1]), uint16(n[2]))
}

// findAdapter returns the number of the first I2C adapter whose name
// starts with prefix.
func findAdapter(prefix string) (int, error) {
	names, _ := filepath.Glob("/sys/bus/i2c/devices/i2c-*/name")
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			continue
		}
		return strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "i2c-"))
	}
	return 0, fmt.Errorf("no I2C adapter whose name starts with %q", prefix)
}
