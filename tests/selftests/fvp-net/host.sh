#!/usr/bin/env bash
# Host half of link_faults.sh: drives node 2's QMP socket (tests/lib/qmp.py) while the
# guests run: link-down/link-up, then pause/resume. Prints KTAP.
# Usage: host.sh RUN_DIR
run=$1
qmp="$FVP_REPO/tests/lib/qmp.py"
n1=$run/node1/out n2=$run/node2/out
wait_for() { local t=0; while [ ! -e "$1" ]; do sleep 1; t=$((t + 1)); [ $t -lt "$2" ] || return 1; done; }
n=0 failed=0
result() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; failed=1; fi; }

echo "TAP version 13"
echo "1..4"
# The suite runs reach_peers.sh first; allow for boot and that.
wait_for "$n1/ready" 600 && wait_for "$n2/ready" 600
for fault in link pause; do
  case $fault in link) on=link-down off=link-up ;; pause) on=pause off=resume ;; esac
  "$qmp" "$run/node2/qmp.sock" $on >/dev/null; result $? "qmp $on on node 2"
  touch "$n1/host-$fault-injected"
  wait_for "$n1/guest-$fault-observed" 120
  "$qmp" "$run/node2/qmp.sock" $off >/dev/null; result $? "qmp $off on node 2"
  touch "$n1/host-$fault-cleared"
  wait_for "$n1/guest-$fault-recovered" 120
done
wait_for "$n1/guest-done" 120
touch "$n2/host-done"
exit $failed
