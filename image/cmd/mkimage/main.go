// Command mkimage builds the firmware image (see package image/mkimage):
// out/image/{vmlinuz,vmlinux,initramfs.cpio.gz,bundle.nvrfw}. make image
// runs it after image/fetch-kernel.sh and image/fetch-userland.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"

	"github.com/nvrfw/nvr/image/mkimage"
)

func main() {
	var opts mkimage.Options
	var boards, modules string
	flag.StringVar(&opts.KernelRoot, "kernel-root", "out/kernel/root", "unpacked Debian linux-image package")
	flag.StringVar(&opts.OutDir, "out", "out/image", "output directory")
	flag.StringVar(&opts.Version, "version", "", "firmware version, semver-like (required)")
	flag.StringVar(&opts.BuildID, "build-id", "", "build identity (required)")
	flag.StringVar(&opts.MinVersion, "min-version", "", "minimum version the bundle upgrades from")
	flag.StringVar(&opts.KeyFile, "key", "", "ed25519 signing key (required)")
	flag.StringVar(&boards, "boards", "nvr4,nvr8,qemu", "comma-separated board models the bundle fits")
	flag.StringVar(&opts.UserlandRoot, "userland-root", "out/userland/root", "unpacked Debian packages holding mdadm and its libraries (image/fetch-userland.sh)")
	flag.StringVar(&modules, "modules", strings.Join(mkimage.DefaultModules(), ","), "comma-separated kernel modules to load at boot")
	verbose := flag.Bool("v", false, "log the u-root builder's steps")
	flag.Parse()
	opts.Boards = strings.Split(boards, ",")
	opts.Modules = strings.Split(modules, ",")
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	res, err := mkimage.Build(ctx, opts)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	paths := make([]string, 0, len(res.Files))
	for p := range res.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	fmt.Printf("kernel %s, %d modules\n", res.KernelVersion, len(res.Modules))
	for _, p := range paths {
		fmt.Printf("%s  %s\n", res.Files[p], p)
	}
}
