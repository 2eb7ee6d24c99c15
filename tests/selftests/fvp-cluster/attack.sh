#!/bin/sh
# An attacker on the replication network (issue 14, docs/replication.md "Threat model"):
# node 3 also runs attacker.py, which sees the traffic between nodes 1 and 2 (one
# emulated L2 hub, NIC promiscuous) and has eight more addresses, 10.77.0.4 to .11, that
# are not configured hosts. Node 1 owns a write-back volume with peers=2 and writes one
# block every two seconds. The attacker
#   1. forges messages into the live connections at the TCP sequence numbers that come
#      next: a REPLICATE into node 1's data connection to node 2, an ACK into node 2's
#      answers on it, a PONG into node 2's heartbeat answers to node 1;
#   2. replays a captured REPLICATE on new connections, from a configured host's address
#      and from one that is not;
#   3. floods node 1 with 48 connections from its eight addresses, each sending a fragment
#      of a header and holding on.
# Every forged or replayed message is refused by its tag or before it is read (logged and
# counted), the flood is bounded (16 handshakes at once, 4 per address) and its log lines
# are rate-limited, the cluster keeps replicating, and every block node 1 wrote reads back.
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
disk=$(cluster_shared_disk)
ADDRS=10.77.0.4,10.77.0.5,10.77.0.6,10.77.0.7,10.77.0.8,10.77.0.9,10.77.0.10,10.77.0.11
ATTACKER="python3 $FVP_REPO/tests/selftests/fvp-cluster/attacker.py"
pe() { cluster_json .cluster.protocol_errors; }
rc() { cluster_json .cluster.refused_connections; }
# attack STEP ARGS: one step of attacker.py, its report as KTAP comments.
attack() { $ATTACKER "$@" >/tmp/attack.out 2>&1; r=$?; sed 's/^/# /' /tmp/attack.out; return $r; }
logged() { fvp_dmesg_new | grep -q "$1"; }

case $FVP_NODE in
1) ktap_plan 8 ;;
2) ktap_plan 4 ;;
*) ktap_plan 5 ;;
esac
cluster_wait_up 3 120 || ktap_info "not all hosts up before the test"
fvp_dmesg_mark
pe0=$(pe)

if [ "$FVP_NODE" = 1 ]; then
  dd if=/dev/urandom of=/tmp/at.data bs=4k count=1024 2>/dev/null
  if fvp_dm_create at "0 $((8 * 2048)) fvp $(fvp_devno "$disk") cp write-back peers=2" &&
    wait_state at protected 120; then
    ktap_pass "at: protected with peers=2"
  else
    ktap_fail "at: protected with peers=2"
  fi
  dd if=/tmp/at.data of=/dev/mapper/at bs=4k oflag=direct 2>/dev/null
  barrier at-ready
  # One block every two seconds (the attacker injects in the quiet between them).
  rm -f /tmp/at-stop
  (i=0; while [ ! -e /tmp/at-stop ] && [ $i -lt 300 ]; do
     dd if=/tmp/at.data of=/dev/mapper/at bs=4k count=1 skip=$((i % 1024)) seek=$((i % 1024)) oflag=direct 2>/dev/null
     i=$((i + 1)); sleep 2; done) &
  writer=$!
  # The flood comes right after the next barrier: count from here (nothing else makes
  # this host refuse connections meanwhile).
  rc0=$(rc)
  flood_mark=$(dmesg | wc -l)
  barrier at-injected 600
  : >/tmp/at-stop
  wait $writer
  pe1=$(pe)
  # By their tag: a forgery refused for another reason (a stale protocol version in the
  # attacker, once) counts too, but logs something else.
  by_tag() { test "$pe1" -ge $((pe0 + 2)) && logged "message authentication failed"; }
  ktap_check "forged ACK and PONG refused by their tag, logged and counted (protocol errors $pe0 -> $pe1)" by_tag
  barrier at-flooded 600
  rc1=$(rc)
  lines=$(dmesg | tail -n +$((flood_mark + 1)) | grep -cE "refused connection from 10\.77\.0\.([4-9]|1[01]):")
  ktap_info "flood: refused connections $rc0 -> $rc1, $lines lines logged about them"
  opened=$(cat "$OUT/published-flood-opened" 2>/dev/null || echo 48)
  ktap_check "every flood connection refused and counted ($((rc1 - rc0)) for $opened opened)" \
    test $((rc1 - rc0)) -ge "$opened" -a "$opened" -gt 16
  # At most 10 lines per 5 s (logic/admission.rs); the flood lasts under 15 s.
  ktap_check "the refusals' log lines are rate-limited ($lines lines for $((rc1 - rc0)) refusals)" \
    test "$lines" -le 30 -a "$lines" -lt $((rc1 - rc0))
  dmesg | tail -n +$((flood_mark + 1)) | grep -E "suppressed|too many handshakes" | head -3 | sed 's/^/# /'
  ktap_check "all hosts up after the attacks" cluster_wait_up 3 120
  ktap_check "at: protected again with peers=2" wait_state at protected 120
  ktap_check "at: every block written reads back" cmp -n 4194304 /tmp/at.data /dev/mapper/at
  ktap_check "at: remove" dmsetup remove at
  barrier at-done
  ktap_finish
fi

if [ "$FVP_NODE" = 2 ]; then
  barrier at-ready
  barrier at-injected 600
  pe1=$(pe)
  ktap_check "a forged REPLICATE is refused by its tag, logged and counted (protocol errors $pe0 -> $pe1)" \
    logged "closing connection with 10.77.0.1:[0-9]*: message authentication failed"
  ktap_check "a replayed REPLICATE from a configured host's address is refused before the handshake" \
    logged "refused connection from 10.77.0.3:[0-9]*: message sealed where"
  ktap_check "a replayed REPLICATE from another address is refused" \
    logged "refused connection from 10.77.0.4:[0-9]*: "
  barrier at-flooded 600
  ktap_check "all hosts up after the attacks" cluster_wait_up 3 120
  barrier at-done
  ktap_finish
fi

# Node 3: the attacker.
for a in $(echo "$ADDRS" | tr ',' ' '); do ip addr add "$a/24" dev eth0; done
barrier at-ready
ktap_check "sniffed node 1 <-> node 2 replication traffic" attack sniff 6
ktap_check "injected a forged REPLICATE, ACK and PONG into live connections" attack inject
ktap_check "replayed a captured REPLICATE (node 2 closed both connections)" attack replay 10.77.0.4
barrier at-injected 600
ktap_check "flooded node 1 from eight addresses" attack flood $ADDRS 6 6
publish flood-opened "$(sed -n 's/.*"opened": \([0-9]*\).*/\1/p' /tmp/attack.out)"
barrier at-flooded 600
for a in $(echo "$ADDRS" | tr ',' ' '); do ip addr del "$a/24" dev eth0; done
ip link set eth0 promisc off
ktap_check "all hosts up after the attacks" cluster_wait_up 3 120
barrier at-done
ktap_finish
