#!/bin/sh
# Write-back semantics that protect data: a flush makes every completed write durable
# on the backing device; FUA writes are durable when they complete; suspending (table
# reload) and removing a volume write dirty data back first; a policy switch to
# write-through drains under load; the pool grows and shrinks under load without
# losing data.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 9
fvp_load
dev=$(fvp_private_disk)
devno=$(fvp_devno "$dev")
size=$(fvp_sectors "$dev")
write_pattern() { head -c 1048576 /dev/urandom >"/tmp/$1"; md5 <"/tmp/$1"; }
fvp_pool_create cs 16M
# No background destaging while the checks run: the idle gate would write data back
# by itself and hide a missing flush. A long sequential cutoff keeps dd in the pool.
table="0 $size fvp $devno cs write-back sequential_cutoff=0"
fvp_dm_create fvp_cs "$table"

# Flush: dm-flakey between the volume and the disk plays the power cut. After fsync
# returns, every later write to the disk is dropped; what fsync promised must be there.
# 8 MiB written just before the fsync cannot all have been destaged by chance.
dmsetup create fl --table "0 $size flakey $devno 0 100000 0"
fvp_dm_create fvp_fl "0 $size fvp $(fvp_devno /dev/mapper/fl) cs write-back sequential_cutoff=0"
head -c 8388608 /dev/urandom >/tmp/p0
want=$(md5 </tmp/p0)
dd if=/tmp/p0 of=/dev/mapper/fvp_fl bs=64k seek=256 oflag=direct 2>/dev/null
fvp_fsync /dev/mapper/fvp_fl
dmsetup suspend --nolockfs --noflush fl
dmsetup load fl --table "0 $size flakey $devno 0 0 100000 1 drop_writes"
dmsetup resume fl
got=$(dd if=/dev/mapper/fl bs=64k skip=256 count=128 iflag=direct 2>/dev/null | md5)
[ "$got" = "$want" ] && ktap_pass "every write completed before an fsync survives a power cut after it" \
  || ktap_fail "every write completed before an fsync survives a power cut after it"
dmsetup remove fvp_fl
dmsetup remove fl

# FUA (O_DSYNC direct writes): durable on completion.
want=$(write_pattern p2)
dd if=/tmp/p2 of=/dev/mapper/fvp_cs bs=64k seek=48 oflag=direct,dsync 2>/dev/null
[ "$(read_md5 "$dev" 48)" = "$want" ] && ktap_pass "O_DSYNC writes are on the disk when they complete" \
  || ktap_fail "O_DSYNC writes are on the disk when they complete"

# Reload with dirty data: suspend writes it back; the data survives the new table.
want=$(write_pattern p3)
dd if=/tmp/p3 of=/dev/mapper/fvp_cs bs=64k seek=80 oflag=direct 2>/dev/null
dmsetup suspend fvp_cs && dmsetup reload fvp_cs --table "$table" && dmsetup resume fvp_cs
[ "$(read_md5 "$dev" 80)" = "$want" ] && [ "$(read_md5 /dev/mapper/fvp_cs 80)" = "$want" ] \
  && ktap_pass "a table reload writes dirty data back first and keeps it" \
  || ktap_fail "a table reload writes dirty data back first and keeps it"

# Remove with dirty data: written back before the volume goes.
want=$(write_pattern p4)
dd if=/tmp/p4 of=/dev/mapper/fvp_cs bs=64k seek=112 oflag=direct 2>/dev/null
dmsetup remove fvp_cs
[ "$(read_md5 "$dev" 112)" = "$want" ] && ktap_pass "removing a volume writes its dirty data back first" \
  || ktap_fail "removing a volume writes its dirty data back first"

# Policy switch and pool resize under load, verified by fio.
fvp_dm_create fvp_cs "0 $size fvp $devno cs write-back"
fio --name=load --filename=/dev/mapper/fvp_cs --thread --direct=1 --ioengine=libaio \
  --iodepth=8 --rw=randwrite --bsrange=4k-64k --size=16M --verify=crc32c --verify_fatal=1 \
  --randseed=7 --output-format=terse >/tmp/fio_load.out 2>&1 &
fio_pid=$!
# Wait until fio's writes flow (TCG guests start fio slowly).
t=0; while [ "$(fvp_status_field fvp_cs writes)" -lt 100 ] && [ $t -lt 1200 ]; do sleep 0.1; t=$((t + 1)); done
ktap_info "load running: $(dmsetup status fvp_cs)"
ktap_check "pool grows under load" fvpctl pool grow cs 32M
ktap_check "pool shrinks under load" fvpctl pool shrink cs 8M
dmsetup message fvp_cs 0 policy write-through
t=0
while [ "$(fvp_status_field fvp_cs policy_effective)" != write-through ] && [ $t -lt 600 ]; do
  sleep 0.1; t=$((t + 1))
done
ktap_info "after the switch: $(dmsetup status fvp_cs)"
[ "$(fvp_status_field fvp_cs policy_requested)" = write-through ] \
  && [ "$(fvp_status_field fvp_cs policy_effective)" = write-through ] \
  && ktap_pass "switch to write-through under load drains and takes effect" \
  || ktap_fail "switch to write-through under load drains and takes effect"
# Report progress while fio verifies (a stall shows as unchanging counters).
while kill -0 $fio_pid 2>/dev/null; do ktap_info "fio running: $(dmsetup status fvp_cs)"; sleep 10; done
if wait $fio_pid; then ktap_pass "data written across the switch and resizes verifies"
else sed 's/^/# /' /tmp/fio_load.out | tail; ktap_fail "data written across the switch and resizes verifies"; fi
pages=$(fvpctl pool list --json | python3 -c 'import json, sys; print([p for p in json.load(sys.stdin)["pools"] if p["name"] == "cs"][0]["pages"])')
[ "$pages" = 2048 ] && ktap_pass "the pool holds 8 MiB after shrinking" || ktap_fail "the pool holds 8 MiB after shrinking ($pages pages)"
dmsetup remove fvp_cs
fvp_pool_destroy cs
ktap_finish
