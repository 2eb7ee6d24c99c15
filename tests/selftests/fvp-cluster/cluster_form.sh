#!/bin/sh
# The three guests form a cluster: every host authenticates every other, holds its lease,
# and a host that does not know the secret is refused without reaching anyone's pool.
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
ktap_plan 5
fvp_load
fvp_pool_create cp 64M
cluster_write_toml "$CLUSTER_SECRET"
if [ "$FVP_NODE" = 3 ]; then
  # Node 3 first tries with the wrong secret, once the others listen.
  barrier applied
  sed "s/^secret = .*/secret = \"not-the-cluster-secret-42\"/" "$CLUSTER_TOML" >/tmp/wrong.toml
  fvpctl cluster apply /tmp/wrong.toml --local-id 3 >/dev/null
  t=0
  while [ "$(cluster_json .cluster.refused_connections)" = 0 ] && [ $t -lt 60 ]; do sleep 1; t=$((t + 1)); done
  ktap_check "with the wrong secret, this host's handshakes are refused" \
    test "$(cluster_json .cluster.refused_connections)" -gt 0
  ktap_check "with the wrong secret, no host is up" test "$(cluster_json .cluster.hosts_up)" = 1
  barrier refused
  ktap_check "cluster apply with the right secret" fvpctl cluster apply "$CLUSTER_TOML" --local-id 3
else
  ktap_check "cluster apply" fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE"
  barrier applied
  # Wait for node 3's own refusal: the counter may already be non-zero from a connection
  # of node 2 that raced this host's apply (refused as "connection closed").
  t=0
  until dmesg | grep -q "fvp: refused connection from 10.77.0.3" || [ $t -ge 60 ]; do sleep 1; t=$((t + 1)); done
  ktap_check "a host with the wrong secret is refused" \
    test "$(cluster_json .cluster.refused_connections)" -gt 0
  ktap_check "the refusal is logged" sh -c 'dmesg | grep -q "fvp: refused connection from 10.77.0.3"'
  barrier refused
fi
ktap_check "all three hosts are up within 120 s" cluster_wait_up 3 120
ktap_check "this host holds its lease" test "$(cluster_json '.cluster.flags | index("lease") != null')" = true
fvpctl cluster show
barrier formed
ktap_finish
