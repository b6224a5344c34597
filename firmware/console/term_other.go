//go:build !linux

package console

// makeRaw leaves the terminal alone off Linux: the console then relies on the
// terminal's own line discipline being off.
func makeRaw(int) (restore func() error, ok bool, err error) { return nil, false, nil }
