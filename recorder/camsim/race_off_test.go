//go:build !race

package camsim

// timingSlack widens real-time tolerances (see race_on_test.go).
const timingSlack = 1
