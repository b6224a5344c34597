// Package rescue holds no code: its go.mod and go.sum pin the u-root
// commands that image/mkimage compiles into the firmware image's busybox.
package rescue
