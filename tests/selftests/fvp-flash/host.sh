#!/usr/bin/env bash
# Host half of the fvp-flash suite. Prints KTAP.
# Once node 1's writers saw 20 fsyncs return (out/writing-crash), kills its QEMU (-9)
# after a random 0.5 to 3.5 s, mid-workload, and boots it again at crash_verify.sh,
# which reopens the flash pool from the same disk and checks every flushed write.
# Usage: host.sh RUN_DIR
run=$1
repo=${FVP_REPO:-$(cd "$(dirname "$0")/../../.." && pwd)}
. "$repo/tests/lib/qemu.sh"
n1=$run/node1
echo "TAP version 13"
echo "1..1"
t=0
while [ ! -e "$n1/out/writing-crash" ] && [ $t -lt 700 ]; do sleep 1; t=$((t + 1)); done
if [ ! -e "$n1/out/writing-crash" ]; then
  echo "not ok 1 node 1 never started writing (no out/writing-crash after ${t}s)"
  exit 0
fi
delay=$(awk -v k="$$" 'BEGIN { srand(k); printf "%.1f", 0.5 + rand() * 3 }')
sleep "$delay"
touch "$n1/expect-killed"
pid=$(cat "$n1/qemu.pid"); kill -9 "$pid"; wait "$pid" 2>/dev/null
while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
flushes=$(grep -c '^F$' "$n1/out/flush.log" 2>/dev/null)
echo "ok 1 node 1 killed ${delay}s after it was ready, with $flushes fsyncs logged"
mv "$n1/console.log" "$n1/console-killed.log"; mv "$n1/tests.log" "$n1/tests-killed.log"
guest_start "$run" 1 1 "fvp-flash@crash_verify"
