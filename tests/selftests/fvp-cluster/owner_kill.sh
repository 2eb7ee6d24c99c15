#!/bin/sh
# Kill -9 of the owner during writes, kill_rounds (settings) times (host.sh kills node 1's QEMU at
# a random moment of each round and restarts it for the next). Every write the owner
# acknowledged is logged outside the guest; after the peers recovered, host.sh checks
# the shared disk for each of them. Here: the owner's first round and the peers' halves.
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
rounds=$(sed -n "s/^kill_rounds=//p" settings)
if [ "$FVP_NODE" = 1 ]; then
  ktap_plan 1
  ktap_check "round 1: killed while writing" owner_round 1
  ktap_finish
fi
ktap_plan "$rounds"
k=1
while [ $k -le "$rounds" ]; do
  ktap_check "round $k: node 1 fenced and its replicas written to the shared disk" peer_round $k
  k=$((k + 1))
done
ktap_finish
