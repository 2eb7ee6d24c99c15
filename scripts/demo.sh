#!/usr/bin/env bash
# `make demo`: one guest with an fvp volume over a virtio disk and a short fio job
# through it (tests/demo/demo.sh). Builds what is missing first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
. tests/lib/qemu.sh
export FVP_REPO=$repo
# The kernel without debug checks: they cost far more than fvp itself under TCG.
kdir=$(scripts/kernel/build.sh bench)
make -s module KDIR="$kdir"
cargo build --release --locked -p fvpctl
scripts/build-initramfs.sh build/initramfs.cpio.gz
export FVP_KERNEL_IMAGE=$kdir/arch/x86/boot/bzImage FVP_INITRAMFS=$repo/build/initramfs.cpio.gz
export FVP_NET_PORT=$(( 20000 + RANDOM % 20000 ))
run=$repo/build/run/demo
rm -rf "$run"; mkdir -p "$run"
echo "booting a guest (TCG; this takes a minute)..."
guest_start "$run" 1 1 demo
guest_wait "$run" 1 600
cat "$run/node1/tests.log"
reports=$(guest_reports "$run/node1" || true)
[ -z "$reports" ] || { echo "kernel reports in $run/node1/console.log:"; echo "$reports"; exit 1; }
grep -q '^ok 1 demo' "$run/node1/tests.log"
