// Package timesync keeps the appliance's clock on time from the NTP servers
// in its configuration: an SNTPv4 client (RFC 4330, the client side of RFC
// 5905) with the sanity checks a recorder needs before it lets a network
// packet move the clock that stamps evidence.
//
// What it owns:
//   - the wire format: a 48-byte client request carrying a random transmit
//     timestamp, and the parsing of the server's reply (Parse), which is
//     fuzzed. A reply is refused unless it is a server-mode (4) reply of
//     version 3 or 4, its origin timestamp echoes our request (an
//     off-path spoofer cannot guess it), its stratum is 1-15, its leap
//     indicator is not "unsynchronised", and its timestamps are set;
//   - the measurement: offset = ((T2-T1)+(T3-T4))/2 and round-trip delay
//     = (T4-T1)-(T3-T2), with T1 and T4 read from the monotonic clock so
//     that a clock step during a query cannot corrupt a sample;
//   - the policy (Syncer): each round asks the configured servers in order
//     (the configuration's order is the operator's preference), takes the
//     first valid answer, and then slews offsets up to StepThreshold
//     (the kernel's single-shot adjtime, 0.5 ms per second, so recorded
//     time never jumps) and steps beyond it. The first sync after start
//     always steps: a box without a working RTC battery boots in 1970;
//   - Status for the console, API and metrics, and an OnChange callback
//     that the appliance turns into events ("time.synced", "time.unsynced"
//     when no server answered for UnsyncedAfter).
//
// The clock itself is behind the small Clock interface, declared here: the
// appliance implements it with settimeofday(2) and adjtimex(2); tests use a
// fake clock against a real UDP server on 127.0.0.1. Without a Clock the
// Syncer only measures (the demo, and hosts that own their clock).
//
// Concurrency: a Syncer's Run loop is one goroutine bound to its context;
// Status is safe to call from any goroutine.
package timesync
