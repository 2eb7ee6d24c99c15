#!/bin/sh
# Kill -9 of a peer during writes. Node 1 owns a write-back volume with one peer and
# runs the ack writer (4 threads) for 45 s; host.sh kills the peer's QEMU at a random moment after
# the 200th acknowledged write and restarts it (this program again, from the top:
# out/restarted-peer_kill tells it so); it also slows node 1's writes to the shared disk
# from the start of the writes until node 1 re-protected, so dirty blocks pile up. The owner must see no I/O error,
# re-protect on the third host by sending it its dirty blocks (the write that lost its
# ACK completes once the new peer holds it), and every acknowledged write must read
# back, through the volume and on the disk.
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
disk=$(cluster_shared_disk)

if [ -e "$OUT/restarted-peer_kill" ]; then
  # Second life of the killed peer: rejoin, and hold none of the volume's replicas
  # (re-protection moved them; placement does not move them back).
  ktap_plan 3
  fvp_load
  fvp_pool_create cp 64M
  cluster_write_toml "$CLUSTER_SECRET"
  ktap_check "restarted after the kill: cluster apply" fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE"
  ktap_check "the killed peer rejoins the cluster" cluster_wait_up 3 600
  ktap_check "the rejoined host holds no replica of the re-protected volume" \
    test "$(host_field 1 replica_blocks)" = 0
  barrier pk-done
  ktap_finish
fi

lost_peer_logged() { fvp_dmesg_new | grep -q 'lost a peer: writing through'; }

if [ "$FVP_NODE" = 1 ]; then
  ktap_plan 11
  cluster_wait_up 3 300 || ktap_info "not all hosts up before the test"
  fvp_dmesg_mark
  ktap_check "create a write-back volume with peers=1" \
    fvp_dm_create pk "0 $((32 * 2048)) fvp $(fvp_devno "$disk") cp write-back peers=1"
  ktap_check "protected within 120 s" wait_state pk protected 120
  peer=$(dmsetup status pk | awk '{ print $18 }')
  epoch=$(dmsetup status pk | awk '{ print $19 }')
  publish pk-peer "$peer"
  barrier pk-ready
  # The ack writer (blocks 0-4095) waits for its log on the results share after every
  # write, so alone it often leaves the pool idle, when the destager writes everything
  # back. fio keeps writing blocks 4096-8191 meanwhile, so that the pool stays busy.
  fio --name=pk-filler --filename=/dev/mapper/pk --direct=1 --ioengine=psync --rw=randwrite \
    --bs=4k --offset=16m --size=16m --time_based --runtime=47 >/tmp/pk-fio.out 2>&1 &
  filler=$!
  python3 "$FVP_REPO/tests/selftests/lib/ackwriter.py" /dev/mapper/pk "$OUT/acks-pk.log" \
    "$OUT/writing-pk" 4096 45 1000000000 200 4 >/tmp/pk-writer.out 2>&1 &
  writer=$!
  # Every state the volume goes through while the writer runs.
  while kill -0 $writer 2>/dev/null; do volume_state pk; sleep 0.5; done >/tmp/pk-states
  wait $writer; rc=$?
  wait $filler; frc=$?
  acks=$(wc -l <"$OUT/acks-pk.log")
  sed 's/^/# /' /tmp/pk-writer.out
  grep -E "err=|write: IOPS" /tmp/pk-fio.out | sed 's/^/# fio: /'
  ktap_check "no I/O error at the owner while its peer died ($acks acknowledged writes, fio too)" \
    test "$rc" = 0 -a "$frc" = 0
  # I/O may wait for the lost peer's ACK deadline (the timeout) plus re-protection (or
  # writing the dirty blocks back), never longer: 3 s + a generous 27 s under emulation.
  longest=$(sed -n 's/.*longest write \([0-9]*\) ms/\1/p' /tmp/pk-writer.out)
  ktap_check "no write stalled longer than the timeout plus re-protection (longest ${longest:-?} ms)" \
    test "${longest:-999999}" -lt 30000
  ktap_info "states seen every 0.5 s: $(uniq /tmp/pk-states | paste -sd' ')"
  # Degraded may last less than the sampling period: the kernel logs each transition.
  ktap_check "the loss noticed (degraded, logged)" lost_peer_logged
  ktap_check "re-protected within 120 s" wait_state pk protected 120
  new_peer=$(dmsetup status pk | awk '{ print $18 }')
  new_epoch=$(dmsetup status pk | awk '{ print $19 }')
  publish pk-newpeer "$new_peer"
  ktap_check "re-protected on another host (peer $peer, epoch $epoch -> peer $new_peer, epoch $new_epoch)" \
    test "$new_peer" != "$peer" -a "$new_peer" != - -a "$new_epoch" -gt "$epoch"
  fvp_dmesg_new | grep -E "lost a peer|protected by|re-sending|dropped the replicas" | sed 's/^/# /'
  resent=$(fvpctl stats pk --json | jq '[.. | objects | select(has("resent_blocks"))][0].resent_blocks')
  ktap_check "re-protection sent the dirty blocks to the new peer ($resent re-sent)" test "${resent:-0}" -gt 0
  ktap_check "every acknowledged write reads back through the volume" \
    python3 "$FVP_REPO/tests/lib/verify_acks.py" "$OUT/acks-pk.log" /dev/mapper/pk
  ktap_check "remove (drains, closes the replicas)" dmsetup remove pk
  ktap_check "every acknowledged write is on the shared disk" \
    python3 "$FVP_REPO/tests/lib/verify_acks.py" "$OUT/acks-pk.log" "$disk"
  barrier pk-done
  ktap_finish
fi

# Nodes 2 and 3: one is the peer (killed by host.sh while it waits below); the other
# sees it fenced and becomes the new peer.
ktap_plan 2
barrier pk-ready
peer=$(cat "$OUT/published-pk-peer")
t=0
until [ "$(host_field "$peer" state)" = fenced ]; do
  sleep 2; t=$((t + 2)); [ $t -lt 600 ] || break
done
ktap_check "node $peer (the peer) fenced by the majority after its kill" test "$(host_field "$peer" state)" = fenced
barrier pk-done
# The owner published its peer after re-protection.
ktap_check "the owner re-protected its volume on this host (peer now: $(cat "$OUT/published-pk-newpeer" 2>/dev/null))" \
  test "$(cat "$OUT/published-pk-newpeer" 2>/dev/null)" = "$FVP_NODE"
ktap_finish
