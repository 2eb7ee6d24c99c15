#!/bin/sh
# Write-back with peers=2, then peers=1: node 1 owns a volume on the shared disk and runs
# fio with crc32c verification; its peers hold replicas while it runs and drop them when
# the volume is removed; the data reaches the shared disk. Then fault domains: with
# node 1 and 2 in domain "a" and node 3 in "b", domain=same places the peer on node 2 and
# domain=different on node 3; with all three in "a", peers=2 domain=same places them on
# nodes 2 and 3. The default domains (one per host) are restored at the end.
# The same over a flash pool (rf; 16 MiB of a RAM disk on node 1): the peers hold the
# replicas; a write-back of every dirty block (flush message) makes them drop them all
# (DESTAGED), before the volume is removed.
# Zeroing (rz): write-zeroes over 256 replicated blocks leaves the peers no replica of
# them (a takeover would write them over the zeroes); a write the pool does not take
# makes the next fsync flush the shared disk.
# Identity (ri): a volume whose shared device node 1 knows by another uuid than its peers
# is never protected (they refuse its replicas).
. ../lib/ktap.sh
. ../lib/fvp.sh
. ../lib/cluster.sh
disk=$(cluster_shared_disk)
sectors=$((64 * 2048))

# verify_on_disk NAME SIZE: fio checks, on the shared disk itself, what the case wrote.
verify_on_disk() {
  fio --name="$1-disk" --filename="$disk" --thread --direct=1 --ioengine=libaio \
    --rw=randwrite --bsrange=4k-64k --iodepth=8 --size="$2" --verify=crc32c --verify_only=1 \
    --verify_state_save=0 --output-format=terse >/tmp/fio-disk.out 2>&1
}

# owner_case NAME TABLE_OPTS EXPECTED_PEERS SIZE: node 1's half of one case; fio writes
# SIZE through the volume (a replicated write costs tens of milliseconds in these
# guests: 4 MiB once, 1 MiB for the placement cases).
# `resolve` answers only a volume suspended with an unreachable peer: EINVAL, unchanged.
resolve_refused() { ! dmsetup message "$1" 0 resolve keep 2>/dev/null && test "$(volume_state "$1")" = protected; }

owner_case() {
  name=$1 opts=$2 want=$3 size=$4 pool=${5:-cp}
  if ! fvp_dm_create "$name" "0 $sectors fvp $(fvp_devno "$disk") $pool write-back $opts"; then
    ktap_fail "$name: create with $opts"; barrier "$name-started"; barrier "$name-written"; barrier "$name-removed"
    return
  fi
  ktap_check "$name: protected within 60 s" wait_state "$name" protected 60
  peers=$(dmsetup status "$name" | awk '{ print $18 }' | tr ',' '\n' | sort -n | paste -sd,)
  ktap_check "$name: peers are $want (got $peers)" test "$peers" = "$want"
  # Tell the other guests who the peers are (host.sh copies publish-* to every guest).
  publish "peers-$name" "$peers"
  barrier "$name-started"
  suspended_before=$(dmesg | grep -c "no majority lease")
  if fio --name="$name" --filename=/dev/mapper/"$name" --thread --direct=1 --ioengine=libaio \
      --rw=randwrite --bsrange=4k-64k --iodepth=8 --size="$size" --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
      --output-format=terse --terse-version=3 >/tmp/fio.out 2>&1; then
    ktap_pass "$name: fio crc32c verify through a replicated volume ($opts)"
  else
    sed 's/^/# /' /tmp/fio.out | tail -20
    ktap_fail "$name: fio crc32c verify through a replicated volume ($opts)"
  fi
  ktap_info "status: $(dmsetup status "$name")"
  # Heartbeats have their own connection: fio's replication traffic must not delay them
  # past the timeout (they shared the data connection once, and leases lapsed).
  ktap_check "$name: the lease held while fio wrote (no 'no majority lease' logged)" \
    test "$(dmesg | grep -c "no majority lease")" = "$suspended_before"
  ktap_check "$name: no write completed with fewer replicas (still protected)" test "$(volume_state "$name")" = protected
  # Only a volume suspended with an unreachable peer waits for the operator's answer.
  ktap_check "$name: 'resolve keep' refused on a volume not waiting for it" resolve_refused "$name"
  barrier "$name-written"
  if [ "$pool" != cp ]; then
    # A flash pool keeps dirty blocks across a removal: write them back first.
    dmsetup message "$name" 0 flush
    t=0
    until [ "$(fvp_status_field "$name" dirty)" = 0 ] || [ $t -ge 120 ]; do sleep 1; t=$((t + 1)); done
    ktap_check "$name: every dirty block written back within 120 s ($(fvp_status_field "$name" dirty) left)" \
      test "$(fvp_status_field "$name" dirty)" = 0
    barrier "$name-flushed"
  fi
  ktap_check "$name: remove (drains, closes the replicas)" dmsetup remove "$name"
  ktap_check "$name: data verified on the shared disk itself" verify_on_disk "$name" "$size"
  barrier "$name-removed"
}

# peer_case NAME: a peer's half: watch the replicas it holds for node 1.
peer_case() {
  name=$1
  barrier "$name-started"
  chosen=no
  tr ',' '\n' <"$OUT/published-peers-$name" | grep -qx "$FVP_NODE" && chosen=yes
  max=0
  while [ ! -e "$OUT/go-$name-written" ]; do
    n=$(host_field 1 replica_blocks 2>/dev/null || echo 0)
    [ "$n" -gt "$max" ] && max=$n
    [ -e "$OUT/barrier-$name-written" ] || : >"$OUT/barrier-$name-written"
    # Every 2 s: each look starts fvpctl and jq (~0.3 s of CPU each in these guests).
    sleep 2
  done
  if [ "$chosen" = yes ]; then
    ktap_check "$name: this peer held replicas of node 1's writes (max $max blocks)" test "$max" -gt 0
  else
    ktap_check "$name: this host, not a peer, held no replicas (max $max)" test "$max" = 0
  fi
  if [ "${2:-cp}" != cp ]; then
    barrier "$name-flushed"
    # DESTAGED follows the write-back's backing flush, within a heartbeat or two.
    t=0
    until [ "$(host_field 1 replica_blocks)" = 0 ] || [ $t -ge 30 ]; do sleep 1; t=$((t + 1)); done
    ktap_check "$name: the write-back made this host drop every replica before the removal ($(host_field 1 replica_blocks) left)" \
      test "$(host_field 1 replica_blocks)" = 0
  fi
  barrier "$name-removed"
  ktap_check "$name: no replica left after the volume was removed" \
    test "$(host_field 1 replica_blocks)" = 0
}

# zero_owner / zero_peer: the rz case's halves.
zero_owner() {
  if ! fvp_dm_create rz "0 $sectors fvp $(fvp_devno "$disk") cp write-back peers=2" \
      || ! wait_state rz protected 60; then
    ktap_fail "rz: protected with peers=2"; barrier rz-zeroed; barrier rz-checked
    dmsetup remove rz 2>/dev/null; return
  fi
  zmax=$(cat "/sys/block/$(dmsetup info -c --noheadings -o blkdevname rz)/queue/write_zeroes_max_bytes")
  # One process, no pause between the write and the zeroing: the destager (idle gate)
  # must not write the blocks back first, which would drop the replicas anyway.
  python3 - /dev/mapper/rz <<'PY'
import fcntl, mmap, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
buf.write(os.urandom(1 << 20))
os.pwrite(fd, buf, 8 << 20)  # 256 blocks at 8 MiB, each replicated to both peers
BLKZEROOUT = 0x127F
fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", 8 << 20, 1 << 20))
PY
  ktap_check "rz: 1 MiB written, then zeroed" test $? = 0
  zeros=$(dd if=/dev/mapper/rz bs=1M skip=8 count=1 iflag=direct 2>/dev/null | tr -d '\0' | wc -c)
  ktap_check "rz: the range reads back as zeroes" test "$zeros" = 0
  # A partial block not in the pool goes to the shared disk itself, which its peers do
  # not hold: an fsync must flush the disk for it, even while protected.
  sleep 1
  f0=$(fvp_disk_flushes "$disk")
  dd if=/dev/urandom of=/dev/mapper/rz bs=512 count=1 seek=$((12 * 2048)) oflag=direct 2>/dev/null
  fvp_fsync /dev/mapper/rz
  f1=$(fvp_disk_flushes "$disk")
  ktap_check "rz: fsync flushes the shared disk after a write that went around the pool ($f0 -> $f1 flushes, $(volume_state rz))" \
    test "$f1" -gt "$f0"
  publish rz-zeroes-max "$zmax"
  barrier rz-zeroed
  barrier rz-checked
  ktap_check "rz: remove" dmsetup remove rz
}
zero_peer() {
  barrier rz-zeroed
  zmax=$(cat "$OUT/published-rz-zeroes-max" 2>/dev/null || echo 0)
  n=$(host_field 1 replica_blocks)
  if [ "$zmax" = 0 ]; then
    ktap_skip "rz: no replica of the zeroed range left ($n)" "the volume does not support write-zeroes here (zeroing wrote data)"
  else
    ktap_check "rz: no replica of the zeroed range left (holds $n blocks of node 1)" test "$n" = 0
  fi
  # A message a peer refuses closes the connection, and the loss hides behind
  # re-protection: none may have happened (a DROP_RANGE once was).
  pe=$(cluster_json '.cluster.protocol_errors')
  ktap_check "rz: no protocol error on this host's connections ($pe)" test "$pe" = 0
  barrier rz-checked
}

# apply_in_place STEP: applies the cluster file whose fault domains just changed. A
# domain is changed in place (FVP_IOC_HOST_UPDATE): no connection may drop, so right
# after the apply every host is still up (a restart starts again from this host alone)
# and no listener was started again.
apply_in_place() {
  echo "fvp-test: apply $1" >/dev/kmsg
  out=$(fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE" --json)
  up=$(cluster_json '"\(.cluster.hosts_up) \([.hosts[] | select(.state == "up" or .state == "self")] | length) \(.cluster.flags | join(","))"')
  restarts=$(dmesg | sed -n "/fvp-test: apply $1\$/,\$p" | grep -c "listening on")
  changes=$(echo "$out" | jq -c '[.hosts.updated, .hosts.replaced]')
  ktap_check "$1: domains changed in place (updated, replaced: $changes; up right after: $up; listener restarts: $restarts)" \
    test "${up% *}" = "3 3" -a "$restarts" = 0 -a "${changes#*],}" = "[]]"
}

if [ "$FVP_NODE" = 1 ]; then ktap_plan 62; else ktap_plan 16; fi
cluster_wait_up 3 120 || ktap_info "not all hosts up before the test"
# peers=1 is covered by the domain cases below.
for case in "rb2 peers=2 2,3"; do
  set -- $case
  if [ "$FVP_NODE" = 1 ]; then owner_case "$1" "$2" "$3" 4M
  else peer_case "$1"; fi
done

if [ "$FVP_NODE" = 1 ]; then
  dmsetup create fvp_rfflash --table "0 32768 linear $(fvp_devno /dev/ram0) 0" &&
    fvpctl pool create rfp --flash /dev/mapper/fvp_rfflash --force >/dev/null
  owner_case rf peers=2 2,3 1M rfp
  ktap_check "rf: flash pool closed" fvpctl pool close rfp
  dmsetup remove fvp_rfflash
else
  peer_case rf rfp
fi

if [ "$FVP_NODE" = 1 ]; then zero_owner; else zero_peer; fi

# Fault domains: node 1 and 2 in "a", node 3 in "b".
barrier domains
CLUSTER_DOMAINS="a a b" cluster_write_toml "$CLUSTER_SECRET"
apply_in_place domains
barrier domains-applied
cluster_wait_up 3 120 || ktap_info "not all hosts up after re-applying"
for case in "rs peers=1,domain=same 2" "rd peers=1,domain=different 3"; do
  set -- $case
  opts=$(echo "$2" | tr ',' ' ')
  if [ "$FVP_NODE" = 1 ]; then owner_case "$1" "$opts" "$3" 1M
  else peer_case "$1"; fi
done

# peers=2 with domain=same: every host in "a".
barrier domains-same
CLUSTER_DOMAINS="a a a" cluster_write_toml "$CLUSTER_SECRET"
apply_in_place domains-same
barrier domains-same-applied
cluster_wait_up 3 120 || ktap_info "not all hosts up after re-applying"
if [ "$FVP_NODE" = 1 ]; then owner_case r2s "peers=2 domain=same" 2,3 1M
else peer_case r2s; fi

barrier domains-default
cluster_write_toml "$CLUSTER_SECRET"
apply_in_place domains-default
barrier domains-default-applied
cluster_wait_up 3 120 || ktap_info "not all hosts up after restoring the domains"

# Removing a host that holds a volume's replicas, on node 1 alone: refused (EAGAIN) while
# the volume moves them to the other host, done once it has; the file puts it back.
leave_owner() {
  if ! fvp_dm_create rh "0 $((8 * 2048)) fvp $(fvp_devno "$disk") cp write-back peers=1" ||
    ! wait_state rh protected 120; then
    for i in 1 2 3 4 5; do ktap_fail "rh: protected with peers=1"; done
    dmsetup remove rh 2>/dev/null; return
  fi
  peer=$(dmsetup status rh | awk '{ print $18 }')
  dd if=/dev/urandom of=/tmp/rh.data bs=4k count=256 2>/dev/null
  dd if=/tmp/rh.data of=/dev/mapper/rh bs=4k oflag=direct 2>/dev/null
  out=$(fvpctl host remove "$peer" 2>&1); rc=$?
  ktap_check "rh: removing its peer (host $peer) is refused while it holds replicas (rc $rc: $out)" \
    sh -c '[ "$1" -ne 0 ] && echo "$2" | grep -q EAGAIN' _ "$rc" "$out"
  t=0
  until fvpctl host remove "$peer" >/dev/null 2>&1 || [ $t -ge 120 ]; do sleep 1; t=$((t + 1)); done
  now=$(dmsetup status rh | awk '{ print $18 }')
  ktap_check "rh: host $peer removed once the volume moved to host $now (after ${t} s)" \
    test "$t" -lt 120 -a "$now" != "$peer" -a "$now" != 0
  ktap_check "rh: every block reads back" cmp -n 1048576 /tmp/rh.data /dev/mapper/rh
  ktap_check "rh: the file puts the host back" fvpctl cluster apply "$CLUSTER_TOML" --local-id 1
  ktap_check "rh: remove" dmsetup remove rh
}
# Dirty blocks from before on a flash pool (rx, node 1 alone): a peers=0 volume leaves
# 64 dirty blocks in the pool when removed (as a crash of a replicated one would); a
# replicated volume over them is refused (a peer may have taken the volume over since);
# peers=0 and `flush` write them back ("keep"), after which peers=1 is accepted; its
# removal writes back what it wrote (no dirty block left behind).
stale_owner() {
  dmsetup create fvp_rxflash --table "0 32768 linear $(fvp_devno /dev/ram0) 0" &&
    fvpctl pool create rxp --flash /dev/mapper/fvp_rxflash --force >/dev/null || {
    for i in 1 2 3 4 5; do ktap_fail "rx: flash pool"; done; return; }
  t="0 $((8 * 2048)) fvp $(fvp_devno "$disk") rxp write-back"
  fvp_dm_create rx "$t" && dd if=/dev/urandom of=/tmp/rx.data bs=4k count=64 2>/dev/null &&
    dd if=/tmp/rx.data of=/dev/mapper/rx bs=4k oflag=direct 2>/dev/null
  dirty=$(fvp_status_field rx dirty)
  dmsetup remove rx
  out=$(dmsetup create rx --table "$t peers=1" 2>&1); rc=$?
  ktap_check "rx: peers=1 over $dirty dirty blocks from before is refused (rc $rc; $(dmesg | grep 'dirty blocks of this device from before' | tail -1 | cut -c1-80))" \
    test "$dirty" = 64 -a "$rc" != 0
  dmsetup remove rx 2>/dev/null
  fvp_dm_create rx "$t" && dmsetup message rx 0 flush
  n=0; until [ "$(fvp_status_field rx dirty)" = 0 ] || [ $n -ge 60 ]; do sleep 1; n=$((n + 1)); done
  ktap_check "rx: peers=0 and flush write them back" test "$(fvp_status_field rx dirty)" = 0
  dmsetup remove rx
  dmsetup create rx --table "$t peers=1" && wait_state rx protected 120
  ktap_check "rx: then peers=1 is accepted and protected" test $? = 0
  dd if=/tmp/rx.data of=/dev/mapper/rx bs=4k seek=64 oflag=direct 2>/dev/null
  ktap_check "rx: remove writes the replicated volume's dirty blocks back" dmsetup remove rx
  out=$(fvpctl pool list | grep "pool rxp")
  case "$out" in *", 0 dirty"*) rc=0 ;; *) rc=1 ;; esac
  ktap_check "rx: no dirty block left in the pool ($out)" test $rc = 0
  fvpctl pool close rxp >/dev/null; dmsetup remove fvp_rxflash
}
# A shared device known by another identity (ri, node 1 alone): node 1 gives its entry
# for shared0 another uuid; both peers then refuse the volume's replicas (VOLUME_OPEN
# answers EMEDIUMTYPE: a takeover through their path could write another device), so it
# is never protected. With the file's uuid back, a new volume is.
ident_owner() {
  fvpctl device remove shared0 >/dev/null &&
    fvpctl device add shared0 "$disk" --uuid 11111111-2222-3333-4444-555555555555 >/dev/null
  ktap_check "ri: shared0 given another uuid on this host" test $? = 0
  mark=$(dmesg | grep -c "refused its replicas: error -124")
  fvp_dm_create ri "0 $((8 * 2048)) fvp $(fvp_devno "$disk") cp write-back peers=1"
  t=0 refused=0
  until [ "$refused" -gt 0 ] || [ $t -ge 30 ]; do
    sleep 1; t=$((t + 1)); refused=$(($(dmesg | grep -c "refused its replicas: error -124") - mark))
  done
  state=$(volume_state ri)
  ktap_check "ri: the peers refuse its replicas (EMEDIUMTYPE, logged by $refused host(s) in ${t} s); not protected ($state)" \
    test "$refused" -gt 0 -a "$state" != protected
  dmsetup remove ri
  fvpctl cluster apply "$CLUSTER_TOML" --local-id 1 >/dev/null &&
    fvp_dm_create ri "0 $((8 * 2048)) fvp $(fvp_devno "$disk") cp write-back peers=1" && wait_state ri protected 60
  ktap_check "ri: with the file's uuid back, a new volume is protected" test $? = 0
  dmsetup remove ri
}
barrier leave
if [ "$FVP_NODE" = 1 ]; then ident_owner; stale_owner; leave_owner; fi
barrier left
cluster_wait_up 3 120 || ktap_info "not all hosts up after the host came back"
ktap_finish
