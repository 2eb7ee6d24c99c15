#!/usr/bin/env bash
# Host side of the guests' barriers (tests/selftests/lib/cluster.sh `barrier`).
# Sourced by a suite's host script; needs `run` (the run directory) and `nodes`.
# serve_barriers: until no guest runs (and none is being restarted: $run/restarting),
# answers every barrier that all running guests reached: when each has created
# out/barrier-NAME, creates out/go-NAME in every guest's results directory. A guest's
# out/publish-NAME is copied to every guest as out/published-NAME first.

running() { kill -0 "$(cat "$run/node$1/qemu.pid" 2>/dev/null)" 2>/dev/null; }

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
