#!/bin/sh
# Partition: node 1 owns a write-back volume with one peer and runs the ack writer;
# host.sh unplugs node 1's NIC (QMP set_link off) for longer than the timeout. The rule
# of docs/replication.md section 4: node 1, alone, loses its lease and suspends I/O; the
# majority (nodes 2 and 3) fences it, and its peer writes its replicas to the shared
# disk. Node 2 then overwrites the first blocks of the volume's region, as a host that
# restarted the workload would. host.sh replugs the link: node 1 must learn that its
# volume was taken over, fail the write it was holding, and write nothing of what it
# still cached. host.sh then checks the shared disk: every acknowledged write is there,
# and the overwritten blocks hold node 2's data (no stale block written back).
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
disk=$(cluster_shared_disk)
# Blocks node 2 overwrites after the takeover, and the sequence number it writes
# (the ack writer's run here numbers its writes from 2000000001).
OVERWRITTEN=1024
OVERWRITE_SEQ=2999999999

if [ "$FVP_NODE" = 1 ]; then
  ktap_plan 8
  cluster_wait_up 3 300 || ktap_info "not all hosts up before the test"
  fvp_dmesg_mark
  ktap_check "create a write-back volume with peers=1" \
    fvp_dm_create lc "0 $((16 * 2048)) fvp $(fvp_devno "$disk") cp write-back peers=1"
  ktap_check "protected within 120 s" wait_state lc protected 120
  publish lc-peer "$(dmsetup status lc | awk '{ print $18 }')"
  barrier lc-ready
  python3 "$FVP_REPO/tests/selftests/lib/ackwriter.py" /dev/mapper/lc "$OUT/acks-lc.log" \
    "$OUT/writing-lc" 4096 900 2000000000 200 4 >/tmp/lc-writer.out 2>&1 &
  writer=$!
  # host.sh cuts the link after the 200th acknowledged write.
  ktap_check "cut off from the majority, the owner suspends I/O" wait_state lc suspended 600
  barrier lc-takenover
  barrier lc-recovered
  # host.sh replugs the link once this barrier is answered.
  ktap_check "link back: the owner learns the volume was taken over (fenced)" wait_state lc fenced 300
  t=0; while kill -0 $writer 2>/dev/null && [ $t -lt 120 ]; do sleep 1; t=$((t + 1)); done
  sed 's/^/# /' /tmp/lc-writer.out
  ktap_check "the write held during the partition failed with EIO" grep -q "Input/output error" /tmp/lc-writer.out
  fvp_dmesg_new | grep -E "no majority|took it over|fenced" | sed 's/^/# /'
  ktap_check "the fenced volume fails new I/O" sh -c '! dd if=/dev/mapper/lc of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null'
  ktap_check "remove the fenced volume (writes nothing back)" dmsetup remove lc
  ktap_check "node 1 rejoins the cluster" cluster_wait_up 3 300
  barrier lc-done
  ktap_finish
fi

fvp_dmesg_mark
barrier lc-ready
peer=$(cat "$OUT/published-lc-peer")
plan=2
[ "$FVP_NODE" = "$peer" ] && plan=$((plan + 1))
[ "$FVP_NODE" = 2 ] && plan=$((plan + 1))
ktap_plan $plan
t=0
until [ "$(host_field 1 state)" = fenced ]; do sleep 2; t=$((t + 2)); [ $t -lt 900 ] || break; done
ktap_check "node 1, cut off, is fenced by the majority" test "$(host_field 1 state)" = fenced
if [ "$FVP_NODE" = "$peer" ]; then
  recovered() { fvp_dmesg_new | grep -q "recovered volume .* of host 1:"; }
  t=0
  until recovered; do sleep 1; t=$((t + 1)); [ $t -lt 600 ] || break; done
  fvp_dmesg_new | grep "recovered volume" | sed 's/^/# /'
  ktap_check "this peer took the volume over: node 1's replicas are on the shared disk" recovered
fi
barrier lc-takenover
if [ "$FVP_NODE" = 2 ]; then
  ktap_check "after the takeover, node 2 overwrites $OVERWRITTEN blocks of the region" \
    python3 -c 'import mmap, os, struct, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for b in range(int(sys.argv[2])):
    buf.seek(0); buf.write(struct.pack("<QQ", b, int(sys.argv[3])) * 256); os.pwrite(fd, buf, b * 4096)
os.fsync(fd)' "$disk" "$OVERWRITTEN" "$OVERWRITE_SEQ"
fi
barrier lc-recovered
ktap_check "node 1 rejoins after its link returns" cluster_wait_up 3 600
barrier lc-done
ktap_finish
