#!/usr/bin/env bash
# Builds the guests' initramfs: static busybox plus tests/guest/init. Everything else
# the tests run comes from the host root, shared read-only over 9p.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/build/initramfs.cpio.gz}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,host}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$repo/tests/guest/init" "$root/init"
mkdir -p "$(dirname "$out")"
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$out"
