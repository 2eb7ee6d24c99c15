#!/usr/bin/env bash
# `make bench-replication`: three guests (the kernel without debug checks, 1 vCPU and
# 1 GiB each) on one emulated L2 link. Node 1 measures 4 KiB random writes at QD1 and
# QD16 on brd, fvp write-through, fvp write-back with peers=0/1/2, and DRBD protocol C
# to node 2, plus the TCP round trip, in one run (tests/bench-replication). Prints a
# table and writes build/bench/replication.json.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
. tests/lib/qemu.sh
export FVP_REPO=$repo
guest_prepare bench
# A nanosecond clock in the guests (latency percentiles; tests/lib/qemu.sh).
export GUEST_CMDLINE_EXTRA=$(guest_precise_clock)
# DRBD is a module of that kernel; the guests load it from here.
kdir=$(scripts/kernel/build.sh bench 2>/dev/null)
mkdir -p build/modules
cp "$kdir/lib/lru_cache.ko" "$kdir/drivers/block/drbd/drbd.ko" build/modules/
# The baseline of the transport's cost: fvp.ko and fvpctl of the last commit whose
# messages carried only a CRC (protocol version 5, 3489139) with the fix of 8b3eb3e
# backported (without it, cluster set overflowed this kernel's 16 KiB stack): branch
# bench-baseline-v5. Built against the same kernel, so that the guests measure both
# transports in one run. FVP_BENCH_BASELINE= skips it.
baseline=${FVP_BENCH_BASELINE-2034949bfcf0c90604166beb6849dae272d84f8b}
rm -rf build/baseline/out
if [ -n "$baseline" ] && sha=$(git rev-parse -q --verify "$baseline^{commit}" 2>/dev/null); then
  if [ ! -f "build/baseline/$sha/fvp.ko" ]; then
    echo "building the baseline fvp.ko and fvpctl of ${sha:0:12} (protocol version 5)..."
    rm -rf build/baseline; mkdir -p "build/baseline/$sha/src"
    git archive "$sha" | tar -x -C "build/baseline/$sha/src"
    make -s -C "build/baseline/$sha/src" module KDIR="$kdir"
    cargo build -q --release --locked -p fvpctl --manifest-path "build/baseline/$sha/src/Cargo.toml" \
      --target-dir build/baseline/target
    cp "build/baseline/$sha/src/fvp.ko" build/baseline/target/release/fvpctl "build/baseline/$sha/"
  fi
  mkdir -p build/baseline/out
  cp "build/baseline/$sha/fvp.ko" "build/baseline/$sha/fvpctl" build/baseline/out/
else
  echo "no baseline commit ${baseline:-(none)}: the table has no protocol-version-5 row"
fi
run=$repo/build/run/bench-replication
rm -rf "$run"; mkdir -p "$run"
nodes=3
echo "booting three benchmark guests (TCG; about 5 minutes)..."
for n in 1 2 3; do QEMU_MEM=1024 GUEST_SMP=1 guest_start "$run" "$n" "$nodes" bench-replication; done
. tests/lib/barriers.sh
# Without errexit: its checks fail as a matter of course (no abort yet, no barrier).
(set +e; serve_barriers) &
rc=0
for n in 1 2 3; do guest_wait "$run" "$n" 3600 || rc=1; done
wait
for n in 1 2 3; do
  guest_finished_ok "$run/node$n" 'ok 1 bench' >/dev/null || { echo "node $n:"; cat "$run/node$n/tests.log"; rc=1; }
done
[ $rc = 0 ] || exit 1
mkdir -p build/bench
python3 scripts/bench_replication_report.py "$run/node1/out/bench" build/bench/replication.json
