#!/usr/bin/env bash
# Host half of the fvp-cluster suite. Prints KTAP.
# - Barriers: when every guest still running has created out/barrier-NAME, creates
#   out/go-NAME in every guest's results directory. A guest's out/publish-NAME is copied
#   to every guest as out/published-NAME (before the barrier that follows it is answered).
# - Owner kills (owner_kill.sh): in each round, once node 1 logged 200 acknowledged writes,
#   kills its QEMU (-9, no flush) after a random delay, waits for the peers to recover,
#   checks every acknowledged write on the shared disk image, and restarts node 1 with
#   tests/cluster-owner for the next round.
# Usage: host.sh RUN_DIR
run=$1
repo=${FVP_REPO:-$(cd "$(dirname "$0")/../../.." && pwd)}
. "$repo/tests/lib/qemu.sh"
nodes=$(ls -d "$run"/node* | wc -l)
rounds=$(sed -n "s/^kill_rounds=//p" "$(dirname "$0")/settings")
running() { kill -0 "$(cat "$run/node$1/qemu.pid" 2>/dev/null)" 2>/dev/null; }
wait_for() { local t=0; while [ ! -e "$1" ]; do sleep 1; t=$((t + 1)); [ $t -lt "$2" ] || return 1; done; }
n=0
result() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fi; }

serve_barriers() {
  while :; do
    local alive=0 f name all m
    for m in $(seq 1 "$nodes"); do running "$m" && alive=$((alive + 1)); done
    [ "$alive" -gt 0 ] || [ -e "$run/restarting" ] || break
    # out/publish-NAME of any guest is copied to every guest as out/published-NAME.
    for f in "$run"/node*/out/publish-*; do
      [ -e "$f" ] || continue
      name=${f##*/publish-}
      for m in $(seq 1 "$nodes"); do
        [ -e "$run/node$m/out/published-$name" ] || cp "$f" "$run/node$m/out/published-$name"
      done
    done
    for f in "$run"/node*/out/barrier-*; do
      [ -e "$f" ] || continue
      name=${f##*/barrier-}
      all=1
      for m in $(seq 1 "$nodes"); do
        running "$m" || continue
        [ -e "$run/node$m/out/barrier-$name" ] || all=0
      done
      if [ $all = 1 ]; then
        for m in $(seq 1 "$nodes"); do touch "$run/node$m/out/go-$name"; done
      fi
    done
    sleep 0.5
  done
}

echo "TAP version 13"
kills=0
grep -q owner_kill.sh "$(dirname "$0")/Makefile" && kills=$rounds
echo "1..$((kills * 2 + 1))"
serve_barriers &
barriers=$!
for k in $(seq 1 "$kills"); do
  n1=$run/node1
  if ! wait_for "$n1/out/writing-$k" 1800; then
    result 1 "round $k: the owner started writing"; result 1 "round $k: no acknowledged write lost"
    break
  fi
  sleep "$(awk -v k="$k" 'BEGIN { srand(k * 7919); printf "%.1f", 0.5 + rand() * 4 }')"
  touch "$n1/expect-killed"
  "$repo/tests/lib/qmp.py" "$n1/qmp.sock" kill >/dev/null 2>&1
  t=0; while running 1 && [ $t -lt 30 ]; do sleep 1; t=$((t + 1)); done
  acks=$(wc -l <"$n1/out/acks-$k.log")
  result 0 "round $k: owner killed (kill -9 of QEMU) after $acks acknowledged writes"
  for m in $(seq 2 "$nodes"); do wait_for "$run/node$m/out/go-round$k-recovered" 900; done
  out=$(python3 "$repo/tests/lib/verify_acks.py" "$n1/out/acks-$k.log" "$run/shared.img")
  result $? "round $k: no acknowledged write lost: $out"
  if [ "$k" -lt "$kills" ]; then
    touch "$run/restarting"
    mv "$n1/console.log" "$n1/console-round$k.log"; mv "$n1/tests.log" "$n1/tests-round$k.log"
    echo $((k + 1)) >"$n1/out/round"
    guest_start "$run" 1 "$nodes" cluster-owner "$run/shared.img"
    sleep 2; rm -f "$run/restarting"
  fi
done
wait "$barriers"
result 0 "barriers served until every guest finished"
