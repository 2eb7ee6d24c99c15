#!/bin/sh
# The error model (docs/target.md, "Errors"): when the backing device refuses writes,
# dirty blocks stay dirty and readable, fsync fails with EIO while they are not on the
# device, status shows `failing` and counts the errors; once the device works again
# (`retry` message), every acknowledged write reaches it and fsync succeeds. Removing the
# volume meanwhile keeps its dirty blocks (detached, docs/target.md "Suspend, reload,
# remove"): the device created again gets them back, a removed volume's blocks reach the
# disk by themselves once it works, and only the operator drops them: `discard-dirty`
# to a volume, `fvpctl volume discard-detached` for a removed one whose disk is dead.
# Under the volume, a dm device whose sectors 1024-5119 are an `error` target plays a
# disk with a bad region: writes there fail, flushes (which device-mapper does not send
# to `error`) succeed, so a flush that ignored a failed write-back would return 0.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 19
fvp_load
dev=$(fvp_private_disk)
devno=$(fvp_devno "$dev")
size=$(fvp_sectors "$dev")
disk_table() {  # disk_table up|bad
  if [ "$1" = up ]; then echo "0 $size linear $devno 0"
  else printf '0 1024 linear %s 0\n1024 4096 error\n5120 %s linear %s 5120\n' "$devno" $((size - 5120)) "$devno"; fi
}
disk() {  # disk up|bad: reloads the device under the volume
  dmsetup suspend --nolockfs --noflush we_disk
  disk_table "$1" | dmsetup load we_disk
  dmsetup resume we_disk
}
fvp_pool_create we 16M
disk_table up | dmsetup create we_disk
fvp_dm_create fvp_we "0 $size fvp $(fvp_devno /dev/mapper/we_disk) we write-back sequential_cutoff=0"
head -c 1048576 /dev/urandom >/tmp/we0
want=$(md5 </tmp/we0)
old=$(read_md5 "$dev" 16)

# The region goes bad first, then the writes arrive: they can only be in the pool.
disk bad
dd if=/tmp/we0 of=/dev/mapper/fvp_we bs=64k seek=16 oflag=direct 2>/dev/null
dirty=$(fvp_status_field fvp_we dirty)
ktap_info "after the writes: $(dmsetup status fvp_we)"
[ "$dirty" -gt 0 ] && ktap_pass "writes are acknowledged into the pool while the device fails ($dirty dirty)" \
  || ktap_fail "writes are acknowledged into the pool while the device fails ($dirty dirty)"
if fvp_fsync /dev/mapper/fvp_we; then ktap_fail "fsync fails with EIO while dirty blocks cannot be written back"
else ktap_pass "fsync fails with EIO while dirty blocks cannot be written back"; fi
ktap_info "after the fsync: $(dmsetup status fvp_we)"
[ "$(fvp_status_field fvp_we health)" = failing ] && [ "$(fvp_status_field fvp_we destage_errors)" -gt 0 ] \
  && [ "$(fvp_status_field fvp_we dirty)" = "$dirty" ] \
  && ktap_pass "status shows the volume failing, the errors counted, the blocks still dirty" \
  || ktap_fail "status shows the volume failing, the errors counted, the blocks still dirty"
[ "$(read_md5 /dev/mapper/fvp_we 16)" = "$want" ] && ktap_pass "the dirty data reads back from the pool" \
  || ktap_fail "the dirty data reads back from the pool"
# A FUA write goes to the device: it fails, and says so.
if dd if=/tmp/we0 of=/dev/mapper/fvp_we bs=64k seek=32 count=1 oflag=direct,dsync 2>/dev/null; then
  ktap_fail "an O_DSYNC write to the failing device fails"
else
  [ "$(fvp_status_field fvp_we io_errors)" -gt 0 ] && ktap_pass "an O_DSYNC write to the failing device fails" \
    || ktap_fail "an O_DSYNC write to the failing device fails (io_errors not counted)"
fi
[ "$(read_md5 "$dev" 16)" = "$old" ] || ktap_info "the disk changed while it refused writes?"

# Removed while the region refuses writes: the blocks are kept, not dropped. Meanwhile
# no other table may cache the disk, and the pool holding them cannot be destroyed.
dirty=$(fvp_status_field fvp_we dirty)
dmsetup remove fvp_we
fvp_pool_create we2 4M
if fvp_dm_create fvp_we2 "0 $size fvp $(fvp_devno /dev/mapper/we_disk) we2 write-back" 2>/dev/null; then
  ktap_fail "a table over the disk in another pool is refused while the removed volume's blocks wait"
  dmsetup remove fvp_we2
elif fvpctl pool destroy we 2>/dev/null; then
  ktap_fail "the pool holding the removed volume's dirty blocks cannot be destroyed"
else
  ktap_pass "another table over the disk, and destroying the pool, are refused while the blocks wait"
fi
fvp_pool_destroy we2
fvpctl stats >/tmp/we_stats.txt 2>&1
sed 's/^/# /' /tmp/we_stats.txt | grep -E "volume|health"
grep -q "(removed)" /tmp/we_stats.txt && grep -q "health detached,failing; destage errors [1-9]" /tmp/we_stats.txt \
  && ktap_pass "fvpctl stats shows the removed volume detached and failing, with its errors" \
  || ktap_fail "fvpctl stats shows the removed volume detached and failing, with its errors"
fvp_dm_create fvp_we "0 $size fvp $(fvp_devno /dev/mapper/we_disk) we write-back sequential_cutoff=0"
ktap_info "created again: $(dmsetup status fvp_we)"
[ "$(fvp_status_field fvp_we dirty)" = "$dirty" ] && [ "$(read_md5 /dev/mapper/fvp_we 16)" = "$want" ] \
  && ktap_pass "created again over the disk, the volume has its $dirty dirty blocks back" \
  || ktap_fail "created again over the disk, the volume has its $dirty dirty blocks back"

# The region works again (remapped): retry now, and every acknowledged write reaches it.
disk up
dmsetup message fvp_we 0 retry
t=0; while [ "$(fvp_status_field fvp_we dirty)" != 0 ] && [ $t -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
ktap_check "fsync succeeds once the device works again" fvp_fsync /dev/mapper/fvp_we
ktap_info "after recovery: $(dmsetup status fvp_we)"
[ "$(fvp_status_field fvp_we health)" = ok ] && [ "$(fvp_status_field fvp_we dirty)" = 0 ] \
  && ktap_pass "the volume is healthy and clean again" || ktap_fail "the volume is healthy and clean again"
[ "$(read_md5 "$dev" 16)" = "$want" ] && ktap_pass "every acknowledged write is on the disk" \
  || ktap_fail "every acknowledged write is on the disk"

# A volume removed with dirty blocks writes them back by itself once the disk works,
# then unregisters (the pool can be destroyed).
head -c 262144 /dev/urandom >/tmp/we1
disk bad
dd if=/tmp/we1 of=/dev/mapper/fvp_we bs=64k seek=16 oflag=direct 2>/dev/null
dmsetup remove fvp_we
# No fvp table is left, but the detached volume holds the module: unloading it would
# lose the blocks.
held=$(cat /sys/module/fvp/refcnt)
if rmmod fvp 2>/dev/null; then unloaded=1; else unloaded=0; fi
[ "$held" = 1 ] && [ $unloaded = 0 ] && ktap_pass "rmmod is refused while a removed volume has dirty blocks" \
  || ktap_fail "rmmod is refused while a removed volume has dirty blocks (refcnt $held, unloaded $unloaded)"
disk up
t=0; while ! fvpctl pool destroy we 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
[ "$(dd if="$dev" bs=64k skip=16 count=4 iflag=direct 2>/dev/null | md5)" = "$(md5 </tmp/we1)" ] \
  && [ $t -lt 100 ] && [ "$(cat /sys/module/fvp/refcnt)" = 0 ] \
  && ktap_pass "a removed volume's dirty blocks reach the disk once it works, then it unregisters and lets the module go" \
  || ktap_fail "a removed volume's dirty blocks reach the disk once it works, then it unregisters and lets the module go (${t}00 ms, refcnt $(cat /sys/module/fvp/refcnt 2>/dev/null))"

# discard-dirty: the operator gives the refused blocks up; the disk keeps its data.
fvp_pool_create we 16M
fvp_dm_create fvp_we "0 $size fvp $(fvp_devno /dev/mapper/we_disk) we write-back sequential_cutoff=0"
kept=$(read_md5 "$dev" 16)
# A reload may not move a volume to another pool: had the disk refused the old
# volume's drain, its blocks would later land over the new volume's writes.
fvp_pool_create we2 4M
if dmsetup reload fvp_we --table "0 $size fvp $(fvp_devno /dev/mapper/we_disk) we2 write-back" 2>/dev/null; then
  ktap_fail "a reload that changes the volume's pool is refused"
  dmsetup clear fvp_we
else
  ktap_pass "a reload that changes the volume's pool is refused"
fi
fvp_pool_destroy we2
# A table loaded with new settings changes nothing until it is resumed.
dmsetup reload fvp_we --table "0 $size fvp $(fvp_devno /dev/mapper/we_disk) we write-through sequential_cutoff=0"
loaded=$(fvp_status_field fvp_we policy_requested)
dmsetup clear fvp_we
[ "$loaded" = write-back ] && [ "$(fvp_status_field fvp_we policy_requested)" = write-back ] \
  && ktap_pass "a loaded table's policy applies only when it is resumed" \
  || ktap_fail "a loaded table's policy applies only when it is resumed (after load: $loaded)"

disk bad
head -c 262144 /dev/urandom | dd of=/dev/mapper/fvp_we bs=64k seek=16 oflag=direct 2>/dev/null
dmsetup message fvp_we 0 discard-dirty
d=$(fvp_status_field fvp_we dirty)
h=$(fvp_status_field fvp_we health)
disk up
[ "$d" = 0 ] && [ "$h" = ok ] && [ "$(read_md5 /dev/mapper/fvp_we 16)" = "$kept" ] \
  && ktap_pass "discard-dirty drops the dirty blocks; the volume reads the disk's data" \
  || ktap_fail "discard-dirty drops the dirty blocks; the volume reads the disk's data (dirty $d, $h)"

# A removed volume whose disk died for good (every sector an `error` target): its
# blocks cannot be written back, and no table can reach them. The operator drops them
# with fvpctl, which asks for --yes; a volume that still has its device is refused.
bdev=$(fvp_devno /dev/mapper/we_disk)
disk bad
head -c 262144 /dev/urandom | dd of=/dev/mapper/fvp_we bs=64k seek=16 oflag=direct 2>/dev/null
if out=$(fvpctl volume discard-detached "$bdev" --yes 2>&1); then
  ktap_fail "discard-detached refuses a volume that still has its device ($out)"
else
  ktap_check "discard-detached refuses a volume that still has its device ($out)" \
    test "$(fvp_status_field fvp_we dirty)" -gt 0 -a -n "$(echo "$out" | grep discard-dirty)"
fi
dirty=$(fvp_status_field fvp_we dirty)
dmsetup remove fvp_we
dmsetup suspend --nolockfs --noflush we_disk
echo "0 $size error" | dmsetup load we_disk
dmsetup resume we_disk
no_yes=$(fvpctl volume discard-detached "$bdev" 2>&1); no_yes_rc=$?
left=$(fvpctl stats --json | jq '[.volumes[] | select(.health.flags | index("detached"))] | length')
ktap_check "without --yes nothing is discarded ($no_yes; detached volumes: $left)" \
  test $no_yes_rc -ne 0 -a "$left" = 1
out=$(fvpctl volume discard-detached /dev/mapper/we_disk --yes --json 2>&1)
t=0; while ! fvpctl pool destroy we 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
ktap_check "discard-detached drops the $dirty blocks of the removed volume over a dead disk, which then unregisters ($out; after $((t * 100)) ms; refcnt $(cat /sys/module/fvp/refcnt))" \
  test "$(echo "$out" | jq .dirty_blocks_discarded)" = "$dirty" -a $t -lt 100 -a "$(cat /sys/module/fvp/refcnt)" = 0
dmsetup remove we_disk
ktap_finish
