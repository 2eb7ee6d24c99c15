#!/bin/sh
# First life: a write-back volume over a fresh flash pool, and writers that fsync every
# 0.3 s (tests/selftests/lib/flushwriter.py). host.sh kills the guest (QEMU, -9) once 20
# fsyncs returned, at a random moment; this program never ends by itself before then.
. ../lib/ktap.sh
. ../lib/fvp.sh
. ./common.sh
ktap_plan 2
fvp_load
flash_devices
out=$(fvpctl pool create ff --flash $fflash 2>&1) && ktap_pass "flash pool formatted ($out)" \
  || ktap_fail "flash pool formatted ($out)"
fvp_dm_create fvc "0 $fsize fvp $(fvp_devno $fback) ff write-back" || ktap_fail "volume created"
rm -f /tmp/out/flush.log /tmp/out/writing-crash
# The kill comes while this runs; if it does not, the test fails.
python3 ../lib/flushwriter.py /dev/mapper/fvc /tmp/out/flush.log /tmp/out/writing-crash $FLASH_BLOCKS 200 0 20 4
ktap_fail "the guest was not killed while writing"
ktap_finish
