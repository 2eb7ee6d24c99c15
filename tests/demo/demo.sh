#!/bin/sh
# Runs in a guest: an fvp volume over a virtio disk, a short fio job through it.
. ../selftests/lib/fvp.sh
set -e
fvp_load
echo "== fvpctl version"; fvpctl version
dev=$(fvp_private_disk)
table="0 $(fvp_sectors "$dev") fvp $(fvp_devno "$dev")"
echo "== dmsetup create demo --table \"$table\""
fvp_dm_create demo "$table"
echo "== fio: 4 KiB random read/write, QD 8, 10 s, with crc32c verification"
fio --name=demo --filename=/dev/mapper/demo --thread --direct=1 --ioengine=libaio \
  --iodepth=8 --rw=randrw --bs=4k --size=32M --time_based --runtime=10 \
  --verify=crc32c --verify_fatal=1 --group_reporting | grep -E 'read:|write:|lat \(usec\): min|err='
echo "== dmsetup table/status"; dmsetup table demo; dmsetup status demo
echo "== fvpctl status"; fvpctl status
dmsetup remove demo
echo "ok 1 demo"
