#!/bin/sh
# Guest half of the fault-injection helpers' test; host.sh is the other half.
# Node 1 watches node 2 while the host unplugs node 2's link, replugs it, pauses node 2
# and resumes it through QMP. Node 2 stays up until the host says it is done.
# The guests and the host meet through marker files in each node's results directory.
. ../lib/ktap.sh
OUT=/tmp/out
wait_for() { fvp_wait_file "$2" "$OUT/$1"; } # wait_for FILE SECONDS
reach() { busybox ping -c 1 -W 1 10.77.0.2 >/dev/null 2>&1; }
# reach_within SECONDS: node 2 answers within the time.
reach_within() { t=0; until reach; do t=$((t + 1)); [ $t -lt "$1" ] || return 1; done; }
# silent_for SECONDS: node 2 answers no ping during the time.
silent_for() { t=0; while [ $t -lt "$1" ]; do reach && return 1; t=$((t + 1)); done; }

if [ "$FVP_NODE" != 1 ]; then
  ktap_plan 1
  touch $OUT/ready
  ktap_check "node $FVP_NODE stays up until the host is done" wait_for host-done 300
  ktap_finish
fi

ktap_plan 4
reach_within 60 || { ktap_fail "node 2 reachable before faults"; ktap_finish; }
touch $OUT/ready
for fault in link pause; do
  wait_for "host-$fault-injected" 120 || { ktap_fail "host injected $fault"; continue; }
  ktap_check "node 2 unreachable while its $fault fault lasts" silent_for 5
  touch "$OUT/guest-$fault-observed"
  wait_for "host-$fault-cleared" 120 || { ktap_fail "host cleared $fault"; continue; }
  ktap_check "node 2 reachable again after its $fault fault is cleared" reach_within 60
  touch "$OUT/guest-$fault-recovered"
done
touch $OUT/guest-done
ktap_finish
