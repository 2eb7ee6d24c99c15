#!/bin/sh
# Second life, after host.sh killed the guest mid-workload: the flash pool opens,
# finds dirty blocks, and every write a returned fsync covered reads back whole; at
# least 100 of them were in the pool alone (the backing device held older data), so
# recovery, not the backing device, brought them back.
. ../lib/ktap.sh
. ../lib/fvp.sh
. ./common.sh
ktap_plan 5
fvp_load
flash_devices
[ -s /tmp/out/flush.log ] || { ktap_fail "no write log from the first life"; ktap_finish; }
out=$(fvpctl pool check --flash $fflash 2>&1) && ktap_pass "pool check after the kill: ok" \
  || { echo "$out" | sed 's/^/# /'; ktap_fail "pool check after the kill: ok"; }
out=$(python3 ../lib/flashverify.py $fback /tmp/out/flush.log --backing $fback 100 2>&1) \
  && ktap_pass "$out" || ktap_fail "$out"
out=$(fvpctl pool open ff --flash $fflash --json 2>&1)
ktap_info "$out"
dirty=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["dirty_blocks"])' 2>/dev/null)
[ "${dirty:-0}" -gt 0 ] && ktap_pass "the pool reopens with $dirty dirty blocks" \
  || ktap_fail "the pool reopens with dirty blocks ($out)"
ktap_check "the volume is created again" fvp_dm_create fvc "0 $fsize fvp $(fvp_devno $fback) ff write-back"
out=$(python3 ../lib/flashverify.py /dev/mapper/fvc /tmp/out/flush.log 2>&1) && ktap_pass "$out" || ktap_fail "$out"
dmsetup remove fvc
fvpctl pool close ff >/dev/null
dmsetup remove fvp_fflash fvp_fback
ktap_finish
