#!/bin/sh
# fio writes random blocks of 4 KiB to 128 KiB with crc32c checksums through an fvp
# volume, then reads everything back and verifies it: both policies, QD 1 and 32, with
# a pool (8 MiB) half the size of the data (16 MiB), so eviction runs throughout.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 6
fvp_load
dev=$(fvp_private_disk)
fvp_pool_create fv 8M
for policy in write-through write-back; do
  if ! fvp_dm_create fvp_fio "0 $(fvp_sectors "$dev") fvp $(fvp_devno "$dev") fv $policy"; then
    ktap_fail "create a $policy volume"; continue
  fi
  for qd in 1 32; do
    if fio --name=verify_${policy}_qd$qd --filename=/dev/mapper/fvp_fio --thread --direct=1 \
        --ioengine=libaio --iodepth=$qd --rw=randwrite --bsrange=4k-128k --size=16M \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --randseed=$qd \
        --output-format=terse --terse-version=3 >/tmp/fio.out 2>&1; then
      ktap_pass "fio crc32c verify, $policy, 4-128 KiB random writes, QD$qd"
    else
      sed 's/^/# /' /tmp/fio.out | tail -20
      ktap_fail "fio crc32c verify, $policy, 4-128 KiB random writes, QD$qd"
    fi
  done
  ev=$(fvp_status_field fvp_fio evictions)
  ktap_info "status: $(dmsetup status fvp_fio)"
  [ "$ev" -gt 0 ] && ktap_pass "$policy: the pool evicted blocks ($ev)" || ktap_fail "$policy: the pool evicted blocks"
  dmsetup remove fvp_fio
done
fvp_pool_destroy fv
ktap_finish
