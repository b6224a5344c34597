#!/usr/bin/env bash
# Fetches the Debian packages of the image's dynamically linked programs
# (mdadm, which assembles the RAID1 recording array) and the libraries they
# need (libudev1, libc6), and unpacks them into DIR/root (default
# out/userland; never committed). image/mkimage takes each program with the
# libraries its ELF header names from there. Does nothing when DIR/root
# already holds mdadm: delete DIR to fetch the current packages.
set -euo pipefail
dir=${1:-out/userland}
pkgs=(mdadm libudev1 libc6)
if [ -x "$dir/root/sbin/mdadm" ]; then
  exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "fetch-userland: needs apt-get and dpkg-deb (Debian)" >&2; exit 1; }
mkdir -p "$dir/debs"
cd "$dir/debs"
rm -f ./*.deb
if ! apt-get download "${pkgs[@]}" 2>&1 | grep -v unsandboxed; then :; fi
if [ "$(ls ./*.deb 2>/dev/null | wc -l)" -ne ${#pkgs[@]} ]; then
  # A fresh machine may have no package lists yet.
  apt-get update -qq
  rm -f ./*.deb
  apt-get download "${pkgs[@]}" 2>&1 | grep -v unsandboxed || true
fi
[ "$(ls ./*.deb 2>/dev/null | wc -l)" -eq ${#pkgs[@]} ] || {
  echo "fetch-userland: apt-get download ${pkgs[*]} failed" >&2; exit 1; }
rm -rf ../root.tmp
mkdir ../root.tmp
for deb in ./*.deb; do
  dpkg-deb -x "$deb" ../root.tmp
done
mv ../root.tmp ../root
echo "fetch-userland: ${pkgs[*]} unpacked into $dir/root"
