// Package pairtest holds the appliance pair's full-system tests: real
// `nvrd run` processes in cluster mode on the primary and the standby, `nvrd
// witness`, `nvrd camsim` serving the cameras, and a VMS in the client
// namespace polling the API over the VIP, all in the namespace rig of package
// rig (root needed; without it the tests skip, or fail under CI=true).
//
// The tests build nvrd once per version stamp (go build -ldflags -X
// main.version=...) into a temporary directory and re-exec the test binary
// as the VMS helper (API polls and ARP probes in the client namespace) and
// for single API requests (exports, switchover). Recording gaps are measured
// from exported footage: MP4s from the API (and `nvrd export` of a killed
// node's volume), whose packet times keep real time across gaps.
//
// Tests (all TestRigPair*, in make test's serial TestRig step, about 3 min
// together): SIGKILL of the primary recording 20 cameras then failback and
// an API switchover; SIGSTOP/SIGCONT of the primary; a rolling upgrade
// between two nvrd builds; the 2-minute lossy dedicated-link soak (make
// soak: 10 minutes). Each logs its figures with t.Logf.
//
// The package has no non-test code. Tests run one at a time (they measure
// real time): make test runs them in its serial TestRig step.
package pairtest
