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
guest_prepare bench
run=$repo/build/run/demo
rm -rf "$run"; mkdir -p "$run"
echo "booting a guest (TCG; this takes a minute)..."
guest_start "$run" 1 1 demo
guest_wait "$run" 1 600
guest_finished_ok "$run/node1" 'ok 1 demo'
