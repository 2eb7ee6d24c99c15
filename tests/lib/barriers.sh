#!/usr/bin/env bash
# Host side of the guests' barriers (tests/selftests/lib/cluster.sh `barrier`).
# Sourced by a suite's host script; needs `run` (the run directory) and `nodes`.
# serve_barriers: until no guest runs (and none is being restarted: $run/restarting),
# answers every barrier that all running guests reached: when each has created
# out/barrier-NAME, creates out/go-NAME in every guest's results directory. A guest's
# out/publish-NAME is copied to every guest as out/published-NAME first.

running() { kill -0 "$(cat "$run/node$1/qemu.pid" 2>/dev/null)" 2>/dev/null; }

# aborted: a guest program of the suite failed (exit code other than 0 or 4, "skip").
# Then every guest finds out/abort: its barriers fail at once instead of waiting for a
# guest that gave up, and host.sh stops waiting for markers that will never come, so a
# broken suite ends in minutes, not at its timeouts.
aborted() { [ -e "$run/abort" ]; }
check_abort() {
  local rc m
  aborted && return 0
  for rc in "$run"/node*/out/*/*.rc; do
    [ -e "$rc" ] || continue
    case $(cat "$rc" 2>/dev/null) in 0|4|'') continue ;; esac
    echo "# aborting the suite: ${rc#"$run"/} says $(cat "$rc")" >&2
    touch "$run/abort"
    for m in $(seq 1 "$nodes"); do touch "$run/node$m/out/abort"; done
    return 0
  done
  return 1
}

copy_published() {
  local f name m
  for f in "$run"/node*/out/publish-*; do
    [ -e "$f" ] || continue
    name=${f##*/publish-}
    for m in $(seq 1 "$nodes"); do
      [ -e "$run/node$m/out/published-$name" ] || cp "$f" "$run/node$m/out/published-$name"
    done
  done
}

serve_barriers() {
  while :; do
    local alive=0 f name all m
    for m in $(seq 1 "$nodes"); do running "$m" && alive=$((alive + 1)); done
    [ "$alive" -gt 0 ] || [ -e "$run/restarting" ] || break
    check_abort
    copy_published
    for f in "$run"/node*/out/barrier-*; do
      [ -e "$f" ] || continue
      name=${f##*/barrier-}
      all=1
      for m in $(seq 1 "$nodes"); do
        running "$m" || continue
        [ -e "$run/node$m/out/barrier-$name" ] || all=0
      done
      if [ $all = 1 ]; then
        # A guest publishes before it reaches the barrier: copy what appeared meanwhile.
        copy_published
        for m in $(seq 1 "$nodes"); do touch "$run/node$m/out/go-$name"; done
      fi
    done
    sleep 0.5
  done
}
