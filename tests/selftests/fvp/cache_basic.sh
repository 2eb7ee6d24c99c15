#!/bin/sh
# Basic caching behaviour of both policies over a virtio disk: write-through writes
# land on the backing device at once, re-reads hit the pool, write-back writes are
# absorbed and destaged on request, write-zeroes invalidate, status reports it all; a
# volume that reuses a removed volume's id writes only its own device.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 11
fvp_load
dev=$(fvp_private_disk)
devno=$(fvp_devno "$dev")
size=$(fvp_sectors "$dev")
fvp_pool_create cb 8M

ktap_check "write-through volume created" fvp_dm_create fvp_wt "0 $size fvp $devno cb write-through"
head -c 1048576 /dev/urandom >/tmp/pattern1
want1=$(md5 </tmp/pattern1)
dd if=/tmp/pattern1 of=/dev/mapper/fvp_wt bs=64k seek=16 oflag=direct 2>/dev/null
[ "$(read_md5 "$dev" 16)" = "$want1" ] && ktap_pass "write-through writes reach the backing device at once" \
  || ktap_fail "write-through writes reach the backing device at once"
read_md5 /dev/mapper/fvp_wt 16 >/dev/null
hits_before=$(fvp_status_field fvp_wt read_hits)
got=$(read_md5 /dev/mapper/fvp_wt 16)
hits_after=$(fvp_status_field fvp_wt read_hits)
ktap_info "read hits $hits_before -> $hits_after; status: $(dmsetup status fvp_wt)"
[ "$got" = "$want1" ] && [ $((hits_after - hits_before)) -eq 256 ] \
  && ktap_pass "a re-read is served from the pool (256 block hits)" \
  || ktap_fail "a re-read is served from the pool (256 block hits)"
dmsetup remove fvp_wt

ktap_check "write-back volume created" fvp_dm_create fvp_wb "0 $size fvp $devno cb write-back"
head -c 1048576 /dev/urandom >/tmp/pattern2
want2=$(md5 </tmp/pattern2)
dd if=/tmp/pattern2 of=/dev/mapper/fvp_wb bs=64k seek=32 oflag=direct 2>/dev/null
wh=$(fvp_status_field fvp_wb write_hits)
[ "$wh" -ge 256 ] && ktap_pass "write-back absorbs writes in the pool ($wh block writes)" \
  || ktap_fail "write-back absorbs writes in the pool ($wh block writes)"
[ "$(read_md5 /dev/mapper/fvp_wb 32)" = "$want2" ] && ktap_pass "write-back data reads back" \
  || ktap_fail "write-back data reads back"
dmsetup message fvp_wb 0 flush
t=0; while [ "$(fvp_status_field fvp_wb dirty)" != 0 ] && [ $t -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
[ "$(fvp_status_field fvp_wb dirty)" = 0 ] && [ "$(read_md5 "$dev" 32)" = "$want2" ] \
  && ktap_pass "the flush message destages every dirty block" \
  || ktap_fail "the flush message destages every dirty block ($(dmsetup status fvp_wb))"

blkdiscard -z -o $((32 * 65536)) -l 1048576 /dev/mapper/fvp_wb
zeros=$(head -c 1048576 /dev/zero | md5)
[ "$(read_md5 /dev/mapper/fvp_wb 32)" = "$zeros" ] && ktap_pass "write-zeroes invalidate cached blocks" \
  || ktap_fail "write-zeroes invalidate cached blocks"

status=$(dmsetup status fvp_wb)
ktap_info "status: $status"
echo "$status" | grep -Eq "^0 $size fvp 4096 write-back write-back [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ cb ok 0 0$" \
  && ktap_pass "status line has the documented fields" || ktap_fail "status line has the documented fields"
table=$(dmsetup table fvp_wb)
[ "$table" = "0 $size fvp $devno cb write-back peers=0 block_size=4096 sequential_cutoff=4194304" ] \
  && ktap_pass "table line round-trips with defaults" || ktap_fail "table line round-trips ($table)"
dmsetup remove fvp_wb

# fvp_wb's id is free again: the next volume gets it, over another device (the disk's
# second half), and its write-backs land there and nowhere else.
half=$((size / 2))
echo "0 $half linear $devno $half" | dmsetup create cb_y
before=$(read_md5 "$dev" 32)
fvp_dm_create fvp_y "0 $half fvp $(fvp_devno /dev/mapper/cb_y) cb write-back"
dd if=/tmp/pattern1 of=/dev/mapper/fvp_y bs=64k seek=32 oflag=direct 2>/dev/null
fvp_fsync /dev/mapper/fvp_y
[ "$(read_md5 /dev/mapper/cb_y 32)" = "$want1" ] && [ "$(read_md5 "$dev" 32)" = "$before" ] \
  && ktap_pass "a volume reusing a removed volume's id writes back only to its own device" \
  || ktap_fail "a volume reusing a removed volume's id writes back only to its own device"
dmsetup remove fvp_y
dmsetup remove cb_y
fvp_pool_destroy cb
ktap_finish
