#!/bin/sh
# Runs in each of three guests (`make demo`): a cluster of three hosts, a write-back
# volume on node 1 with one peer, writes whose acknowledgements are logged to the host,
# node 1 killed by the host in the middle of them, and its peer writing node 1's dirty
# blocks to the shared backing disk. scripts/demo.sh then checks the disk image.
. ../selftests/lib/ktap.sh
. ../selftests/lib/fvp.sh
. ../selftests/lib/cluster.sh
say() { echo "[node $FVP_NODE] $*"; }
fvp_load
fvpctl pool create demo --ram 64M >/dev/null
cluster_write_toml "$CLUSTER_SECRET"
say "fvpctl cluster apply $CLUSTER_TOML --local-id $FVP_NODE"
fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE" >/dev/null
cluster_wait_up 3 300 || { say "the cluster did not form"; exit 1; }
disk=$(cluster_shared_disk)

if [ "$FVP_NODE" = 1 ]; then
  say "fvpctl cluster show"; fvpctl cluster show
  table="0 $((16 * 2048)) fvp $(fvp_devno "$disk") demo write-back peers=1"
  say "dmsetup create vol --table \"$table\""
  fvp_dm_create vol "$table"
  wait_state vol protected 120
  say "dmsetup status vol: $(dmsetup status vol)"
  say "(fields 17-19: replication state, the peer holding replicas, epoch)"
  barrier demo-ready
  say "writing random 4 KiB blocks (O_DIRECT); each acknowledged write is logged to the host"
  python3 "$FVP_REPO/tests/selftests/lib/ackwriter.py" /dev/mapper/vol "$OUT/acks.log" \
    "$OUT/writing" 4096 300
  say "not killed: the demo failed"
  exit 1
fi

barrier demo-ready
t=0
until [ "$(host_field 1 state)" = fenced ]; do sleep 1; t=$((t + 1)); [ $t -lt 600 ] || break; done
say "host 1 stopped answering; after the timeout the majority (nodes 2 and 3) fenced it:"
fvpctl cluster show
t=0
until [ "$(host_field 1 replica_blocks)" = 0 ] && [ "$(host_field 1 state)" = fenced ]; do
  sleep 1; t=$((t + 1)); [ $t -lt 600 ] || break
done
dmesg | grep -E "fvp: (host 1 is fenced|recovered volume)" | sed "s/^/[node $FVP_NODE] kernel: /"
barrier demo-recovered
say "ok"
echo "ok 1 demo"
