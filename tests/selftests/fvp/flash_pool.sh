#!/bin/sh
# Flash pools (docs/flash.md) on a RAM disk standing in for an SSD, over the private
# virtio disk: formatting refuses a device in use; write-back data survives closing
# and reopening the pool (dirty and exact), and the cache comes back warm; a volume
# over another device of the same path and a different size is refused; damaged
# superblocks are refused, and `pool check` says so; write-back reaches the backing
# device; fio verifies both policies with eviction.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 19
fvp_load
dev=$(fvp_private_disk)
devno=$(fvp_devno "$dev")
size=$(fvp_sectors "$dev")
flash=/dev/ram0
# 16 MiB of the RAM disk (about 4,000 blocks): fio below writes twice that, so
# eviction and write-back for room run under it.
dmsetup create fvp_flashdev --table "0 32768 linear $(fvp_devno $flash) 0"
fdev=/dev/mapper/fvp_flashdev

# A device that holds a filesystem is not formatted without --force.
dd if=/dev/zero of=$fdev bs=4k count=32 2>/dev/null
printf '\123\357' | dd of=$fdev bs=1 seek=1080 conv=notrunc 2>/dev/null
out=$(fvpctl pool create fp --flash $fdev 2>&1)
echo "$out" | grep -q "ext2/3/4" && ! fvpctl pool list | grep -q "flash pool fp" \
  && ktap_pass "pool create --flash refuses a device holding ext4 ($out)" \
  || ktap_fail "pool create --flash refuses a device holding ext4 ($out)"
out=$(fvpctl pool create fp --flash $fdev --force 2>&1)
ktap_info "$out"
fvpctl pool list | grep -q "flash pool fp: $fdev" && ktap_pass "pool create --flash --force formats and opens it" \
  || ktap_fail "pool create --flash --force formats and opens it ($(fvpctl pool list 2>&1))"

ktap_check "write-back volume over the flash pool" fvp_dm_create fvf "0 $size fvp $devno fp write-back"
head -c 4194304 /dev/urandom >/tmp/fpat
want=$(md5 </tmp/fpat)
dd if=/tmp/fpat of=/dev/mapper/fvf bs=64k seek=64 oflag=direct 2>/dev/null
got=$(dd if=/dev/mapper/fvf bs=64k skip=64 count=64 iflag=direct 2>/dev/null | md5)
dirty=$(fvp_status_field fvf dirty)
[ "$got" = "$want" ] && [ "$dirty" -ge 1024 ] && ktap_pass "written data reads back, $dirty blocks dirty" \
  || ktap_fail "written data reads back ($(dmsetup status fvf))"
# Overwrite 3 blocks of it (out of place) before the flush. The volume takes whole
# blocks only (logical block size 4096), so no write shares a block with another.
head -c 12288 /dev/urandom | dd of=/tmp/fpat bs=4096 seek=2 conv=notrunc 2>/dev/null
dd if=/tmp/fpat of=/dev/mapper/fvf bs=4096 seek=$((64 * 16 + 2)) skip=2 count=3 oflag=direct 2>/dev/null
want=$(md5 </tmp/fpat)
[ "$(blockdev --getss /dev/mapper/fvf)" = 4096 ] && ktap_pass "logical block size 4096" \
  || ktap_fail "logical block size 4096 ($(blockdev --getss /dev/mapper/fvf))"
fvp_fsync /dev/mapper/fvf && ktap_pass "fsync of the volume completes" || ktap_fail "fsync of the volume completes"
backing=$(dd if="$dev" bs=64k skip=64 count=64 iflag=direct 2>/dev/null | md5)
[ "$backing" != "$want" ] && ktap_pass "the backing device does not have the data yet (write-back)" \
  || ktap_fail "the backing device does not have the data yet"

# Close and reopen: the dirty blocks and the clean ones come back.
dmsetup remove fvf
fvpctl pool close fp >/dev/null && ! fvpctl pool list | grep -q "flash pool fp" \
  && ktap_pass "pool close" || ktap_fail "pool close ($(fvpctl pool list 2>&1))"
out=$(fvpctl pool check --flash $fdev 2>&1) && ktap_pass "pool check of the closed pool: ok" \
  || { echo "$out" | sed 's/^/# /'; ktap_fail "pool check of the closed pool: ok"; }
out=$(fvpctl pool open fp --flash $fdev --json 2>&1)
ktap_info "$out"
cached=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["cached_blocks"])')
rdirty=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["dirty_blocks"])')
[ "$rdirty" = 1024 ] && ktap_pass "reopened: 1024 dirty blocks found ($cached cached)" \
  || ktap_fail "reopened: 1024 dirty blocks found ($out)"
# A table over a device at the same path but another size is refused.
dmsetup create fvp_small --table "0 8192 linear $devno 0"
fvp_dmesg_mark
if dmsetup create fvf2 --table "0 8192 fvp /dev/mapper/fvp_small fp write-back" 2>/dev/null; then
  dmsetup remove fvf2
  ktap_pass "a new device gets its own record"
else
  ktap_fail "a new device gets its own record ($(fvp_dmesg_new | tail -3))"
fi
dmsetup remove fvp_small
dmsetup create fvp_small --table "0 16384 linear $devno 0"
if dmsetup create fvf2 --table "0 16384 fvp /dev/mapper/fvp_small fp write-back" 2>/dev/null; then
  dmsetup remove fvf2
  ktap_fail "a device of another size at a recorded path is refused"
else
  ktap_pass "a device of another size at a recorded path is refused"
fi
dmsetup remove fvp_small
ktap_check "the volume is created again" fvp_dm_create fvf "0 $size fvp $devno fp write-back"
hits0=$(fvp_status_field fvf read_hits)
got=$(dd if=/dev/mapper/fvf bs=64k skip=64 count=64 iflag=direct 2>/dev/null | md5)
hits=$(( $(fvp_status_field fvf read_hits) - hits0 ))
[ "$got" = "$want" ] && [ "$hits" = 1024 ] && ktap_pass "after reopening, every block reads back from the pool (1024 hits)" \
  || ktap_fail "after reopening, data and hits ($hits; $(dmsetup status fvf))"
dmsetup message fvf 0 flush
t=0; while [ "$(fvp_status_field fvf dirty)" != 0 ] && [ $t -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
backing=$(dd if="$dev" bs=64k skip=64 count=64 iflag=direct 2>/dev/null | md5)
[ "$backing" = "$want" ] && ktap_pass "write-back reaches the backing device" \
  || ktap_fail "write-back reaches the backing device ($(dmsetup status fvf))"
dmsetup remove fvf

# fio verifies both policies; the pool (about 15.5 MiB) holds less than the data.
for policy in write-through write-back; do
  fvp_dm_create fvf "0 $size fvp $devno fp $policy" || { ktap_fail "fio $policy: volume"; continue; }
  if fio --name=fverify_$policy --filename=/dev/mapper/fvf --thread --direct=1 --ioengine=libaio --iodepth=16 \
      --rw=randwrite --bsrange=4k-128k --size=24M --verify=crc32c --verify_fatal=1 --do_verify=1 \
      --randseed=7 --output-format=terse --terse-version=3 >/tmp/fio.out 2>&1; then
    ktap_pass "fio crc32c verify on a flash pool, $policy, QD16"
    ktap_info "$(fvpctl pool list | grep 'flash pool fp')"
  else
    sed 's/^/# /' /tmp/fio.out | tail -20
    ktap_fail "fio crc32c verify on a flash pool, $policy, QD16 ($(dmsetup status fvf))"
  fi
  dmsetup remove fvf
done

# Damaged superblocks: the pool is refused, and pool check says so.
fvpctl pool close fp >/dev/null
dd if=/dev/urandom of=$fdev bs=4k count=2 conv=notrunc 2>/dev/null
fvp_dmesg_mark
if fvpctl pool open fp --flash $fdev >/dev/null 2>&1; then
  ktap_fail "a pool with both superblocks damaged is refused"
  fvpctl pool close fp
else
  fvp_dmesg_new | grep -q "refused" && ktap_pass "a pool with both superblocks damaged is refused" \
    || ktap_fail "a pool with both superblocks damaged is refused (no reason logged)"
fi
fvpctl pool check --flash $fdev >/tmp/check.out 2>&1 && ktap_fail "pool check reports the damage" \
  || ktap_pass "pool check reports the damage ($(head -1 /tmp/check.out))"
dmsetup remove fvp_flashdev
ktap_finish
