package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux
// for every architecture this runs on).
const clockTick = 100

// cpuTime returns a process's user plus system CPU time.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime and stime (fields 14 and 15) from a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses, so
// fields are counted after its last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11]; stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1<<36 { // 1<<36 ticks: 21 years at 100 Hz, no overflow below
			return 0, fmt.Errorf("stat: time %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTick), nil
}

// rss returns a process's resident set size in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseRSS(b)
}

// parseRSS reads VmRSS (kB) from /proc/PID/status.
func parseRSS(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q", rest)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return 0, fmt.Errorf("status: VmRSS %q", rest)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("status: no VmRSS")
}

// usage sums CPU time and RSS over pids.
func usage(pids []int) (cpu time.Duration, mem int64, err error) {
	for _, pid := range pids {
		c, err := cpuTime(pid)
		if err != nil {
			return 0, 0, err
		}
		m, err := rss(pid)
		if err != nil {
			return 0, 0, err
		}
		cpu += c
		mem += m
	}
	return cpu, mem, nil
}
