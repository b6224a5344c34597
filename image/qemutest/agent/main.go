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
//	pull LABEL LINE up|down       set the pull of a gpio-sim line (a drive bay's
//	                              presence: active low, pull down = inserted)
//
// At start, when /lib/qemutest/gpio-sim.ko is in the image (built at test
// time from Debian's linux-source), it loads it, creates the qemu board
// profile's chip (label nvr-bays, 8 lines) through configfs and then
// creates /run/qemutest-agent.ready, which image/appliance waits for
// before it starts nvrd (nvrd binds the bays' lines at start).
//
// i2c-stub keeps what is written and reads it back, which is how the tests
// load a PSU's PMBus registers and flip its STATUS_WORD.
package main

import (
	"bufio"
	"errors"
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
	if err := setupGPIOSim(); err != nil {
		fmt.Fprintf(os.Stderr, "agent: gpio-sim: %v\n", err)
	}
	if err = os.MkdirAll("/run", 0o755); err == nil {
		err = os.WriteFile("/run/qemutest-agent.ready", nil, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: ready file: %v\n", err)
	}
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
	if len(w) == 4 && w[0] == "pull" {
		return pull(w[1], w[2], w[3])
	}
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

// gpioSimModule is the gpio-sim module the test overlay adds.
const gpioSimModule = "/lib/qemutest/gpio-sim.ko"

// gpioSimChip is the configfs directory of the simulated chip.
const gpioSimChip = "/sys/kernel/config/gpio-sim/nvr"

func setupGPIOSim() error {
	f, err := os.Open(gpioSimModule)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load %s: %w", gpioSimModule, err)
	}
	if _, err := os.Stat("/sys/kernel/config/gpio-sim"); err != nil {
		if err := unix.Mount("configfs", "/sys/kernel/config", "configfs", 0, ""); err != nil {
			return fmt.Errorf("mount configfs: %w", err)
		}
	}
	for _, d := range []string{gpioSimChip, gpioSimChip + "/bank0"} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	for _, w := range [][2]string{{"bank0/num_lines", "8"}, {"bank0/label", "nvr-bays"}, {"live", "1"}} {
		if err := os.WriteFile(filepath.Join(gpioSimChip, w[0]), []byte(w[1]), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", w[0], err)
		}
	}
	return nil
}

// pull sets the pull of line on the gpio-sim chip labelled label (the
// one this agent made: configfs names its device and chip).
func pull(label, line, dir string) error {
	if dir != "up" && dir != "down" {
		return fmt.Errorf("pull %q: want up or down", dir)
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(gpioSimChip, name))
		return strings.TrimSpace(string(b)), err
	}
	if l, err := read("bank0/label"); err != nil || l != label {
		return fmt.Errorf("no gpio-sim chip labelled %q (have %q, %v)", label, l, err)
	}
	dev, err := read("dev_name")
	if err != nil {
		return err
	}
	chip, err := read("bank0/chip_name")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join("/sys/devices/platform", dev, chip, "sim_gpio"+line, "pull"), []byte("pull-"+dir), 0o644)
}
