#!/bin/sh
# Flush and FUA semantics of peers=0 write-back while the destager runs, checked on the
# backing device's own log (dm-log-writes between the volume and the disk; the xfstests
# technique): a sequential mix of writes, O_DSYNC writes, discards, zero-outs and fsyncs,
# a mark after each fsync and FUA write, then the log replayed to every mark
# (tests/selftests/lib/logwrites.py): at each fsync's flush every write completed before
# the fsync is on the disk; after each FUA write its version is, and no write-back of an
# older copy lands after it.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 3
fvp_load
dev=$(fvp_private_disk)
size=$(fvp_sectors "$dev")
log=/dev/ram0
# The region starts zeroed; the log starts without an old super block.
dd if=/dev/zero of="$dev" bs=1M count=4 oflag=direct 2>/dev/null
dd if=/dev/zero of=$log bs=1M count=1 oflag=direct 2>/dev/null
dmsetup create lw --table "0 $size log-writes $(fvp_devno "$dev") $(fvp_devno $log)"
fvp_pool_create fl 16M
fvp_dm_create fvp_fl "0 $size fvp $(fvp_devno /dev/mapper/lw) fl write-back sequential_cutoff=0"
ktap_check "600 operations: writes, O_DSYNC writes, discards, zero-outs, fsyncs" \
  python3 ../lib/logwrites.py run /dev/mapper/fvp_fl lw 600 11 /tmp/lw.json
destaged=$(fvp_status_field fvp_fl destaged)
ktap_info "status: $(dmsetup status fvp_fl)"
dmsetup remove fvp_fl
dmsetup remove lw
[ "$destaged" -gt 0 ] && ktap_pass "the destager wrote blocks back during the workload ($destaged)" \
  || ktap_fail "the destager wrote blocks back during the workload ($destaged)"
out=$(python3 ../lib/logwrites.py check $log /tmp/lw.json)
rc=$?
ktap_info "$out"
[ $rc = 0 ] && ktap_pass "the log replayed to every fsync and FUA mark holds every write it must" \
  || ktap_fail "the log replayed to every fsync and FUA mark holds every write it must"
fvp_pool_destroy fl
ktap_finish
