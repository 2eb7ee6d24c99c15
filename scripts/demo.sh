#!/usr/bin/env bash
# `make demo`: three guests form an fvp cluster over one emulated link and share one
# backing disk. Node 1 writes through a write-back volume with one peer; the host kills
# node 1's QEMU (no flush, like a power cut) in the middle of the writes; the peer writes
# node 1's dirty blocks to the shared disk; the host checks every acknowledged write on
# the disk image. Builds what is missing first (tests/demo is the guests' side).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
. tests/lib/qemu.sh
export FVP_REPO=$repo
# The kernel without debug checks: they cost far more than fvp itself under TCG.
guest_prepare bench
run=$repo/build/run/demo
rm -rf "$run"; mkdir -p "$run"
nodes=3
truncate -s 64M "$run/shared.img"
echo "booting three guests (TCG; a few minutes)..."
for n in 1 2 3; do GUEST_SMP=1 guest_start "$run" "$n" "$nodes" demo "$run/shared.img"; done
. tests/lib/barriers.sh
serve_barriers &
t=0
until [ -e "$run/node1/out/writing" ]; do
  sleep 1; t=$((t + 1))
  [ $t -lt 900 ] || { echo "node 1 never started writing"; cat "$run/node1/tests.log"; exit 1; }
done
sleep 2
acks=$(wc -l <"$run/node1/out/acks.log")
echo "== host: killing node 1's QEMU (SIGKILL: nothing more reaches its disks) after $acks acknowledged writes"
kill -9 "$(cat "$run/node1/qemu.pid")" 2>/dev/null || true
for n in 2 3; do guest_wait "$run" "$n" 900 || true; done
wait
# Each guest's own output (node 1's too: it was written as it went, before the kill).
for n in 1 2 3; do echo; echo "== node $n"; cat "$run/node$n/out/demo/demo.tap"; done
echo
echo "== host: every acknowledged write of node 1, checked on the shared disk image"
python3 tests/lib/verify_acks.py "$run/node1/out/acks.log" "$run/shared.img"
for n in 2 3; do guest_finished_ok "$run/node$n" 'ok 1 demo' >/dev/null || { echo "node $n did not finish"; exit 1; }; done
echo "demo: node 1 died with dirty blocks in its RAM; none of its acknowledged writes was lost"
