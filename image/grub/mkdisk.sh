#!/usr/bin/env bash
# mkdisk.sh DISK BOOTDIR [SIZE_MB]
#
# Writes a BIOS-bootable raw disk image: an MBR holding GRUB's boot.img and
# one FAT32 partition at 1 MiB, GRUB's core.img in the gap before it, and in
# the partition grub/grub.cfg (image/grub/grub.cfg) plus the content of
# BOOTDIR (grubenv, a/, b/: see firmware/slots). GRUB finds its config at
# (hd0,msdos1)/grub and the slots at the partition's root; save_env rewrites
# /grubenv in place. Needs grub-pc-bin, mtools and dosfstools.
set -euo pipefail
disk=$1 boot=$2 size_mb=${3:-256}
here=$(cd "$(dirname "$0")" && pwd)
lib=/usr/lib/grub/i386-pc
for tool in grub-mkimage mkfs.fat mcopy mmd; do
  command -v "$tool" >/dev/null || { echo "mkdisk: $tool missing (apt-get install grub-pc-bin mtools dosfstools)" >&2; exit 1; }
done
[ -f "$lib/boot.img" ] || { echo "mkdisk: $lib/boot.img missing (apt-get install grub-pc-bin)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

part_sectors=$(( (size_mb - 1) * 2048 ))
mkfs.fat -F 32 -n NVRBOOT -i 4e565246 -C "$tmp/part.img" $(( part_sectors / 2 )) >/dev/null
mmd -i "$tmp/part.img" ::/grub
mcopy -i "$tmp/part.img" "$here/grub.cfg" ::/grub/grub.cfg
mcopy -s -i "$tmp/part.img" "$boot"/* ::/

grub-mkimage -O i386-pc -o "$tmp/core.img" -p '(hd0,msdos1)/grub' \
  biosdisk part_msdos fat normal linux loadenv test echo serial terminal configfile
core_sectors=$(( ($(stat -c %s "$tmp/core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || { echo "mkdisk: core.img too large" >&2; exit 1; }

# MBR: boot.img's code (it loads core.img from sector 1, its default), one
# active FAT32 (LBA) partition from sector 2048, the boot signature.
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
{
  head -c 440 "$lib/boot.img"
  printf '\0\0\0\0\0\0'
  printf '\x80\xfe\xff\xff\x0c\xfe\xff\xff'
  le32 2048
  le32 "$part_sectors"
  head -c 48 /dev/zero
  printf '\x55\xaa'
} > "$tmp/mbr"
[ "$(stat -c %s "$tmp/mbr")" -eq 512 ] || { echo "mkdisk: bad MBR size" >&2; exit 1; }
{
  cat "$tmp/mbr" "$tmp/core.img"
  head -c $(( (2047 - core_sectors) * 512 + core_sectors * 512 - $(stat -c %s "$tmp/core.img") )) /dev/zero
  cat "$tmp/part.img"
} > "$disk.tmp"
[ "$(stat -c %s "$disk.tmp")" -eq $(( (2048 + part_sectors) * 512 )) ] || { echo "mkdisk: bad disk size" >&2; exit 1; }
mv "$disk.tmp" "$disk"
