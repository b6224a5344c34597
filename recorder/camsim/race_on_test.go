//go:build race

package camsim

// timingSlack widens real-time tolerances: the race detector slows the
// simulator and its test clients several times over.
const timingSlack = 6
