#!/usr/bin/env bash
# Host half of the fvp-cluster suite. Answers barriers: when every guest that is still
# running has created out/barrier-NAME, creates out/go-NAME in every guest's results
# directory. Runs until every guest has powered off. Prints KTAP.
# Usage: host.sh RUN_DIR
run=$1
nodes=$(ls -d "$run"/node* | wc -l)
running() { kill -0 "$(cat "$run/node$1/qemu.pid" 2>/dev/null)" 2>/dev/null; }
echo "TAP version 13"
echo "1..1"
while :; do
  alive=0
  for n in $(seq 1 "$nodes"); do running "$n" && alive=$((alive + 1)); done
  [ "$alive" -gt 0 ] || break
  for f in "$run"/node*/out/barrier-*; do
    [ -e "$f" ] || continue
    name=${f##*/barrier-}
    all=1
    for n in $(seq 1 "$nodes"); do
      running "$n" || continue
      [ -e "$run/node$n/out/barrier-$name" ] || all=0
    done
    if [ $all = 1 ]; then
      for n in $(seq 1 "$nodes"); do touch "$run/node$n/out/go-$name"; done
    fi
  done
  sleep 0.5
done
echo "ok 1 barriers served until every guest finished"
