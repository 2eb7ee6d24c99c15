#!/bin/sh
# The three guests form a cluster: every host authenticates every other, holds its lease,
# and a host that does not know the secret, or uses another transport mode, is refused
# without reaching anyone's pool. Then the cluster switches to transport "encrypted" for
# the programs after this one (lib/cluster.sh).
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
if [ "$FVP_NODE" = 1 ]; then ktap_plan 14; else ktap_plan 9; fi
rm -f "$OUT/cluster-transport"; CLUSTER_TRANSPORT=
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
  # The right secret but another transport mode: refused too, saying why.
  CLUSTER_TRANSPORT=encrypted cluster_write_toml "$CLUSTER_SECRET"
  mv "$CLUSTER_TOML" /tmp/encrypted.toml
  cluster_write_toml "$CLUSTER_SECRET"
  before=$(cluster_json .cluster.refused_connections)
  fvpctl cluster apply /tmp/encrypted.toml --local-id 3 >/dev/null
  t=0
  while [ "$(cluster_json .cluster.refused_connections)" = "$before" ] && [ $t -lt 60 ]; do sleep 1; t=$((t + 1)); done
  ktap_check "with transport encrypted among authenticated hosts, no host is up" \
    test "$(cluster_json .cluster.hosts_up)" = 1 -a "$(cluster_json .cluster.transport)" = encrypted
  barrier refused-transport
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
  t=0
  until dmesg | grep -q "fvp: refused connection from 10.77.0.3:[0-9]*: transport mode differs" || [ $t -ge 60 ]; do sleep 1; t=$((t + 1)); done
  ktap_check "a host with another transport mode is refused, and the log says why" \
    sh -c 'dmesg | grep -q "fvp: refused connection from 10.77.0.3:[0-9]*: transport mode differs"'
  barrier refused-transport
fi
ktap_check "all three hosts are up within 120 s" cluster_wait_up 3 120
ktap_check "this host holds its lease" test "$(cluster_json '.cluster.flags | index("lease") != null')" = true
fvpctl cluster show
barrier formed
if [ "$FVP_NODE" = 1 ]; then
  # A host list change applied on this host alone (hosts 4 and 5, which do not exist,
  # join the list; one change: fvpctl defers all but the last): the list before stays
  # in force (joint majorities), and the lease holds with hosts 2 and 3, a majority of
  # both lists. Putting the list back ends the joint state once hosts 2 and 3 announce
  # it in their heartbeats.
  cp "$CLUSTER_TOML" /tmp/five.toml
  for n in 4 5; do
    printf '[[host]]\nid = %s\naddr = "10.77.0.%s:7790"\ndomain = "d%s"\nkey = "%064d"\n' "$n" "$n" "$n" "$n" >>/tmp/five.toml
  done
  ktap_check "a change adding two hosts is applied" fvpctl cluster apply /tmp/five.toml --local-id 1
  ktap_check "the list before stays in force, no change is left pending" \
    test "$(cluster_json '.cluster.flags | (index("joint") != null) and (index("pending") == null)')" = true
  t=0
  until [ "$(cluster_json '.cluster.flags | index("lease") != null')" = true ] || [ $t -ge 30 ]; do sleep 1; t=$((t + 1)); done
  ktap_check "the lease holds with hosts 2 and 3" test "$(cluster_json '.cluster.flags | index("lease") != null')" = true
  ktap_check "the list is put back" fvpctl cluster apply "$CLUSTER_TOML" --local-id 1
  t=0
  until [ "$(cluster_json '.cluster.flags | index("joint") == null')" = true ] || [ $t -ge 30 ]; do sleep 1; t=$((t + 1)); done
  ktap_check "the joint state ends once hosts 2 and 3 announce the list" \
    test "$(cluster_json '.cluster.flags | index("joint") == null')" = true
  ktap_info "joint state ended after ${t} s"
  cluster_wait_up 3 60 || ktap_info "not all hosts up again within 60 s"
fi
barrier reverted
# Every host switches to transport "encrypted" (connections restart with new keys) and
# the later programs of the suite run with it.
echo encrypted >"$OUT/cluster-transport"
CLUSTER_TRANSPORT=encrypted cluster_write_toml "$CLUSTER_SECRET"
ktap_check "cluster apply with transport encrypted" fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE"
ktap_check "all three hosts are up again with transport encrypted" cluster_wait_up 3 120
ktap_check "the cluster reports transport encrypted" test "$(cluster_json .cluster.transport)" = encrypted
barrier encrypted
ktap_finish
