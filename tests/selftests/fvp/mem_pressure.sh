#!/bin/sh
# Memory pressure on fvp's own allocations. failslab refuses a fifth of the slab
# allocations whose call chain runs through fvp.ko (the stack-trace filter keeps it to
# those), sleeping GFP_NOIO/GFP_KERNEL ones included, while fio writes, flushes and
# verifies through a write-back and a write-through volume over a healthy disk. No I/O
# may fail: an allocation on the I/O or write-back path waits for memory rather than
# fail a bio or a flush (docs/architecture.md, "Memory"). The refusals are counted, so
# a run in which fvp allocated nothing through the filter fails instead of passing.
# Last, every allocation through fvp.ko fails (probability 100) for a write-back run:
# only the reserves (the IoOp mempool, the bio set, the destager's and flushes'
# preallocated state) can carry the I/O, and it must finish before a watchdog ends the
# injection (a retry loop would wait for memory that never comes).
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 7
fvp_load
F=/sys/kernel/debug/failslab
[ -d $F ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
if [ ! -w $F/probability ] || [ ! -w $F/require-start ]; then
  for i in 1 2 3 4 5 6 7; do ktap_skip "memory pressure test $i" "no failslab stack-trace filter (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_STACKTRACE_FILTER)"; done
  ktap_finish
fi
dev=$(fvp_private_disk)
size=$(fvp_sectors "$dev")
fvp_pool_create mp 4M
# fvp.ko's memory: /proc/modules gives its size and base address.
range=$(awk '$1 == "fvp" { print $6, $2 }' /proc/modules | python3 -c '
import sys; base, size = sys.stdin.read().split(); b = int(base, 16); print(hex(b), hex(b + int(size)))')
set -- $range
ktap_info "fvp.ko at $1..$2"
TIMES=1000000
inject() {  # inject on|off
  if [ "$1" = on ]; then
    echo N >$F/ignore-gfp-wait
    echo 0 >$F/verbose
    echo 32 >$F/stacktrace-depth
    echo "$2" >$F/require-start
    echo "$3" >$F/require-end
    echo 1 >$F/interval
    echo $TIMES >$F/times
    echo 20 >$F/probability
  else
    echo 0 >$F/probability
  fi
}

# fio_verify_run NAME IODEPTH FSYNC SEED: 4-64 KiB random writes over 8 MiB (twice the
# pool: eviction and misses too), an fsync every FSYNC writes, then a read-back of
# everything with checksums; sets fio_ok (output in /tmp/fio_mp.out).
fio_verify_run() {
  fio_ok=0
  fio --name="$1" --filename=/dev/mapper/fvp_mp --thread --direct=1 --ioengine=libaio \
      --iodepth="$2" --rw=randwrite --bsrange=4k-64k --size=8M --fsync="$3" \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --randseed="$4" \
      --output-format=terse --terse-version=3 >/tmp/fio_mp.out 2>&1 && fio_ok=1
}

for policy in write-back write-through; do
  fvp_dm_create fvp_mp "0 $size fvp $(fvp_devno "$dev") mp $policy sequential_cutoff=0"
  inject on "$1" "$2"
  fio_verify_run mem_$policy 8 16 11
  inject off
  refused=$((TIMES - $(cat $F/times)))
  ktap_info "$policy: $refused allocations refused; $(dmsetup status fvp_mp)"
  [ "$fio_ok" = 1 ] || sed 's/^/# /' /tmp/fio_mp.out | tail -20
  [ "$fio_ok" = 1 ] && [ "$(fvp_status_field fvp_mp io_errors)" = 0 ] \
    && ktap_pass "$policy: fio writes, fsyncs and verifies with no error while fvp's allocations fail" \
    || ktap_fail "$policy: fio writes, fsyncs and verifies with no error while fvp's allocations fail"
  [ "$refused" -gt 0 ] && ktap_pass "$policy: failslab refused $refused of fvp's allocations" \
    || ktap_fail "$policy: failslab refused none of fvp's allocations (the filter missed them)"
  dmsetup remove fvp_mp
done

fvp_dm_create fvp_mp "0 $size fvp $(fvp_devno "$dev") mp write-back sequential_cutoff=0"
rm -f /tmp/mp_watchdog
inject on "$1" "$2"
echo 100 >$F/probability
( sleep 180; echo 0 >$F/probability; touch /tmp/mp_watchdog ) &
watchdog=$!
start=$(date +%s)
fio_verify_run mem_all 16 8 12
# Still under injection: a writer keeps rewriting 64 blocks (under the low watermark,
# and never idle for 50 ms, so the destager leaves them), and an fsync meanwhile must
# write back what is dirty. (`dmsetup status` is read with the injection paused: its
# ioctl may fail with ENOMEM.)
fio --name=mem_bg --filename=/dev/mapper/fvp_mp --direct=1 --ioengine=psync --rw=randwrite \
    --bs=4k --size=256k --time_based --runtime=8 >/tmp/fio_bg.out 2>&1 &
writer=$!
echo 0 >$F/probability
dirty_before=0
for i in $(seq 100); do  # fio takes seconds to start under emulation
  dirty_before=$(fvp_status_field fvp_mp dirty)
  [ "$dirty_before" -gt 0 ] && break
  sleep 0.2
done
destaged_before=$(fvp_status_field fvp_mp destaged)
ktap_info "before the fsync: $(dmsetup status fvp_mp)"
[ -e /tmp/mp_watchdog ] || echo 100 >$F/probability
sync_ok=1
timeout 60 python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDWR))' /dev/mapper/fvp_mp || sync_ok=0
echo 0 >$F/probability
destaged_by_fsync=$(($(fvp_status_field fvp_mp destaged) - destaged_before))
[ -e /tmp/mp_watchdog ] || echo 100 >$F/probability
wait $writer || { fio_ok=0; sed 's/^/# /' /tmp/fio_bg.out | tail -20; }
elapsed=$(($(date +%s) - start))
kill $watchdog 2>/dev/null; wait $watchdog 2>/dev/null
inject off
refused=$((TIMES - $(cat $F/times)))
ktap_info "all allocations fail: $refused refused in ${elapsed}s; $(dmsetup status fvp_mp)"
[ "$fio_ok" = 1 ] || sed 's/^/# /' /tmp/fio_mp.out | tail -20
[ ! -e /tmp/mp_watchdog ] && [ "$fio_ok" = 1 ] && [ "$(fvp_status_field fvp_mp io_errors)" = 0 ] \
  && ktap_pass "write-back: fio finishes with no error while every fvp allocation fails" \
  || ktap_fail "write-back: fio finishes with no error while every fvp allocation fails (watchdog fired: $([ -e /tmp/mp_watchdog ] && echo yes || echo no))"
[ "$refused" -gt 0 ] && ktap_pass "write-back: failslab refused $refused of fvp's allocations, all of them" \
  || ktap_fail "write-back: failslab refused none of fvp's allocations (the filter missed them)"
[ "$sync_ok" = 1 ] && [ "$dirty_before" -gt 0 ] && [ "$destaged_by_fsync" -gt 0 ] \
  && ktap_pass "write-back: an fsync under writes succeeds and writes back ($destaged_by_fsync of $dirty_before dirty) while every fvp allocation fails" \
  || ktap_fail "write-back: an fsync under writes succeeds and writes back while every fvp allocation fails (fsync ok: $sync_ok, dirty $dirty_before, written back by it $destaged_by_fsync, watchdog fired: $([ -e /tmp/mp_watchdog ] && echo yes || echo no))"
dmsetup remove fvp_mp
fvp_pool_destroy mp
ktap_finish
