#!/bin/sh
# An fvp volume over a virtio disk passes reads, writes, flushes and discards through
# to the backing device at the same offsets.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 6
fvp_load
dev=$(fvp_private_disk)
devno=$(fvp_devno "$dev")
size=$(fvp_sectors "$dev")

ktap_check "volume created over $dev ($size sectors)" fvp_dm_create fvp_pt "0 $size fvp $devno"

table=$(dmsetup table fvp_pt)
[ "$table" = "0 $size fvp $devno" ] && ktap_pass "table line round-trips" \
  || ktap_fail "table line round-trips (got '$table')"

# Write a pattern through the volume at 1 MiB; it must appear at the same offset below.
head -c 1048576 /dev/urandom >/tmp/pattern
dd if=/tmp/pattern of=/dev/mapper/fvp_pt bs=64k seek=16 oflag=direct conv=fsync 2>/dev/null
below=$(dd if="$dev" bs=64k skip=16 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
want=$(md5sum </tmp/pattern | cut -d' ' -f1)
[ "$below" = "$want" ] && ktap_pass "writes land on the backing device at the same offset" \
  || ktap_fail "writes land on the backing device at the same offset"

above=$(dd if=/dev/mapper/fvp_pt bs=64k skip=16 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$above" = "$want" ] && ktap_pass "reads return the backing device's data" \
  || ktap_fail "reads return the backing device's data"

status=$(dmsetup status fvp_pt)
ktap_info "status: $status"
echo "$status" | grep -Eq "^0 $size fvp passthrough [1-9][0-9]*$" && ktap_pass "status line counts mapped bios" \
  || ktap_fail "status line counts mapped bios"

dmsetup remove fvp_pt
ktap_check "volume removed" sh -c '! dmsetup info fvp_pt >/dev/null 2>&1'
ktap_finish
