// Package watchdog owns the appliance's hardware watchdog: the Linux watchdog
// character device (/dev/watchdogN) driven through its ioctls, and the Guard
// that pets it only while every registered health check passes, so that a
// recorder which stopped recording is reset by the hardware instead of looking
// alive.
//
// # Device
//
// Open arms the watchdog (the kernel starts the timer when the device is
// opened). Device.KeepAlive pets it, SetTimeout/SetPreTimeout program it,
// Info/Status/BootStatus/TimeLeft read it. Close disarms it with the magic
// close character 'V' (unless the kernel was built with nowayout); CloseArmed
// leaves it running, for a reboot that must still be guarded. BootStatus with
// FlagCardReset set means the previous reset was done by the watchdog; Boot
// reads it once and says so, and RecordBoot counts boots and watchdog resets
// in a small crash-safe file. ReadSysfs reads a watchdog's state from
// /sys/class/watchdog without opening (and so arming) the device. A driver
// without WDIOF_KEEPALIVEPING is pinged by a write.
//
// The system calls sit behind an unexported interface so the Device's logic is
// tested with a fake; tests of a real device run only where one exists (the
// QEMU guest's i6300esb) and skip with the reason elsewhere. No build tag is
// needed: watchdog_other.go makes Open fail with ErrNotSupported off Linux.
//
// # Guard
//
// A Guard pets a Pettable (a *Device, or watchdogtest.Dog in tests) every
// Interval (at most Timeout/3) while no fatal check fails. Checks are plain
// functions of the current time that should not block (read an atomic,
// compare a timestamp): Recent (a component committed within a bound, e.g.
// the ring store's last commit), Heartbeat (a main loop is alive), or any
// CheckFunc (every camera that should record is recording or alarmed
// offline). A check that does block (a health function stuck behind a lock
// held across a hung fsync) fails after CheckTimeout and is not started again
// until it returns, so petting stops and the log says which check hung. Each
// check's change of state is logged once, with the check's name. During BootGrace after Run
// starts, and while a maintenance Hold is active (firmware install), the Guard
// pets whatever the checks say. Advisory checks are logged but never stop
// petting.
//
// # Concurrency
//
// Device methods may be called from several goroutines; the kernel serialises
// them. A Guard's AddCheck, Heartbeat, Hold and Status are safe for concurrent
// use with Run, also from inside a check. Run evaluates each check in a
// goroutine of its own and joins them all before it returns (a check blocked
// forever blocks that return; the watchdog resets the machine anyway); it
// returns when its context ends, without disarming the device.
package watchdog
