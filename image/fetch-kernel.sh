#!/usr/bin/env bash
# Fetches Debian's kernel (linux-image-amd64 and the versioned package it
# depends on) and unpacks it into DIR/root (default out/kernel; never
# committed). Does nothing when DIR/root already holds a kernel: delete DIR
# to fetch the current one. Set KERNEL_PKG=linux-image-6.1.0-NN-amd64 to pin
# the versioned package (the image is reproducible for a given kernel).
set -euo pipefail
dir=${1:-out/kernel}
if compgen -G "$dir/root/boot/vmlinuz-*" >/dev/null; then
  exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "fetch-kernel: needs apt-get and dpkg-deb (Debian)" >&2; exit 1; }
mkdir -p "$dir/debs"
cd "$dir/debs"
rm -f ./*.deb
pkg=${KERNEL_PKG:-}
if [ -z "$pkg" ]; then
  apt-get download linux-image-amd64 2>&1 | grep -v unsandboxed || true
  if ! compgen -G "linux-image-amd64_*.deb" >/dev/null; then
    # A fresh machine may have no package lists yet.
    apt-get update -qq
    apt-get download linux-image-amd64 2>&1 | grep -v unsandboxed || true
  fi
  meta=$(ls linux-image-amd64_*.deb)
  pkg=$(dpkg-deb -f "$meta" Depends | grep -o 'linux-image-[0-9][^ ,(]*-amd64' | head -n1)
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot tell the versioned kernel package" >&2; exit 1; }
apt-get download "$pkg" 2>&1 | grep -v unsandboxed || true
rm -rf ../root.tmp
mkdir ../root.tmp
dpkg-deb -x "$(ls "${pkg}"_*.deb)" ../root.tmp
mv ../root.tmp ../root
echo "fetch-kernel: $pkg unpacked into $dir/root"
