#!/bin/sh
# fio writes 64 MiB of random 4 KiB blocks with crc32c checksums through an fvp volume,
# then reads everything back and verifies it, at queue depth 1 and 16.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 2
fvp_load
dev=$(fvp_private_disk)
if ! fvp_dm_create fvp_fio "0 $(fvp_sectors "$dev") fvp $(fvp_devno "$dev")"; then
  ktap_fail "create the volume"; ktap_finish
fi
for qd in 1 16; do
  if fio --name=verify_qd$qd --filename=/dev/mapper/fvp_fio --thread --direct=1 \
      --ioengine=libaio --iodepth=$qd --rw=randwrite --bs=4k --size=64M \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --randseed=$qd \
      --output-format=terse --terse-version=3 >/tmp/fio_qd$qd.out 2>&1; then
    ktap_pass "fio crc32c verify, 64 MiB random writes, QD$qd"
  else
    sed 's/^/# /' /tmp/fio_qd$qd.out
    ktap_fail "fio crc32c verify, 64 MiB random writes, QD$qd"
  fi
done
dmsetup remove fvp_fio
ktap_finish
