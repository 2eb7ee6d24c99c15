#!/bin/sh
# A restarted owner (node 1) rejoins the cluster and runs the next kill round; the round
# number is in its results directory (written by the fvp-cluster suite's host.sh).
cd "$FVP_REPO/tests/selftests/fvp-cluster" || exit 1
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
k=$(cat "$OUT/round")
ktap_plan 2
fvp_load
fvp_pool_create cp 64M
cluster_write_toml "$CLUSTER_SECRET"
fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE" >/dev/null
ktap_check "round $k: the restarted owner rejoins the cluster" cluster_wait_up 3 300
ktap_check "round $k: killed while writing" owner_round "$k"
ktap_finish
