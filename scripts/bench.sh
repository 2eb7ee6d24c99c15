#!/usr/bin/env bash
# `make bench`: fvp against the RAM limit (brd), the device-mapper floor (dm-linear over
# brd), the raw SAN-like backing device (dm-delay, 1 ms) and its peers (dm-cache,
# dm-writecache, bcache), and an fvp flash pool, side by side in one guest and one run;
# then the reopen time of a full 1 GiB flash pool. Prints a table and writes
# build/bench/single-host.json and build/bench/single-host.png.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
. tests/lib/qemu.sh
export FVP_REPO=$repo
# The kernel without debug checks, which would distort the ratios.
guest_prepare bench
run=$repo/build/run/bench
rm -rf "$run"; mkdir -p "$run"
echo "booting the benchmark guest (TCG; about 10 minutes)..."
# 4 GiB: the 1 GiB flash pool at the end sits on RAM disks (1,032 MiB), next to
# what the rows before it left in theirs (up to 1 GiB) and the 128 MiB RAM pool.
QEMU_MEM=4096 GUEST_DISK_MB=512 guest_start "$run" 1 1 bench
guest_wait "$run" 1 3000
guest_finished_ok "$run/node1" 'ok 1 bench' >/dev/null || { cat "$run/node1/tests.log"; exit 1; }
mkdir -p build/bench
python3 scripts/bench_report.py "$run/node1/out/bench" build/bench/single-host
