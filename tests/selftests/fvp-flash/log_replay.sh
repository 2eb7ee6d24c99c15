#!/bin/sh
# Power cuts at random moments, replayed from a dm-log-writes log (lib/logreplay.py):
# one log device records every write, flush, FUA write and discard that reached both
# the flash pool's device and the volume's backing device, while writers fsync every
# 0.3 s, discard and write with O_DSYNC, over more blocks than the pool holds (so
# eviction and write-back for room run). Each replayed cut must reopen, and every
# write that a returned fsync covered must read back whole.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 3
fvp_load
# 48 MiB logged: 16 MiB of flash (about 4,000 blocks), 32 MiB of backing device.
FLASH=32768 BACKING=65536
dmsetup create fvp_lw --table "0 $((FLASH + BACKING)) log-writes /dev/ram1 /dev/ram2" \
  || { ktap_fail "dm-log-writes device"; ktap_finish; }
dmsetup create fvp_lwflash --table "0 $FLASH linear /dev/mapper/fvp_lw 0"
dmsetup create fvp_lwback --table "0 $BACKING linear /dev/mapper/fvp_lw $FLASH"
out=$(fvpctl pool create lw --flash /dev/mapper/fvp_lwflash 2>&1) && ktap_pass "flash pool formatted on the logged device" \
  || ktap_fail "flash pool formatted on the logged device ($out)"
dmsetup message fvp_lw 0 mark formatted
fvp_dm_create fvp_lwvol "0 $BACKING fvp /dev/mapper/fvp_lwback lw write-back" || ktap_fail "volume"
rm -f /tmp/out/lw.log
# 6,000 blocks (23 MiB) over a 16 MiB pool.
out=$(MARK_DEV=fvp_lw MIX=1 python3 ../lib/flushwriter.py /dev/mapper/fvp_lwvol /tmp/out/lw.log /tmp/lw.ready 6000 15 0 10 4 2>&1) \
  && ktap_pass "writers ran: $out" || ktap_fail "writers ran: $out"
ktap_info "$(dmsetup status fvp_lwvol)"
ktap_info "$(fvpctl pool list | grep 'flash pool lw')"
dmsetup remove fvp_lwvol
fvpctl pool close lw
dmsetup remove fvp_lwflash fvp_lwback
ktap_info "log: $(dmsetup status fvp_lw)"
dmsetup remove fvp_lw
out=$(python3 ../lib/logreplay.py /dev/ram2 /dev/ram3 /tmp/out/lw.log $FLASH $BACKING 12 "$$" fvp_lwflash fvp_lwback 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
# A failure keeps the log for study on the host (build/run/fvp-flash/node1/out).
[ $rc = 0 ] || dd if=/dev/ram2 of=/tmp/out/lw-log.img bs=1M count=64 2>/dev/null
[ $rc = 0 ] && ktap_pass "$(echo "$out" | tail -1)" || ktap_fail "$(echo "$out" | tail -1)"
ktap_finish
