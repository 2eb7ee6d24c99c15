#!/bin/sh
# Runs in a guest: a write-back fvp volume over a slow (1 ms, SAN-like) backing device,
# the same fio job on the raw slow device and on the volume, then fvpctl stats.
. ../selftests/lib/fvp.sh
set -e
fvp_load
echo "== fvpctl version"; fvpctl version
disk=$(fvp_private_disk)
size=$(fvp_sectors "$disk")
dmsetup create slow --table "0 $size delay $(fvp_devno "$disk") 0 1"
echo "== backing device: $disk behind dm-delay (1 ms per I/O) = /dev/mapper/slow"
fvpctl pool create demo --ram 64M
table="0 $size fvp $(fvp_devno /dev/mapper/slow) demo write-back sequential_cutoff=0"
echo "== dmsetup create vol --table \"$table\""
fvp_dm_create vol "$table"
job() {
  fio --name="$2" --filename="$1" --thread --direct=1 --ioengine=libaio --iodepth=16 \
    --rw=randrw --rwmixread=70 --bs=4k --size=16M --time_based --runtime=8 --randseed=1 \
    --group_reporting | grep -E '^ *(read|write):|clat \(usec\).*avg'
}
echo "== fio 4 KiB random 70/30 read/write, QD 16, 16 MiB working set, 8 s: raw slow device"
job /dev/mapper/slow raw
echo "== warm the pool: read the working set once through the volume"
dd if=/dev/mapper/vol of=/dev/null bs=64k count=256 iflag=direct 2>&1 | tail -1
echo "== the same fio job through the fvp volume"
job /dev/mapper/vol fvp
echo "== dmsetup status vol"; dmsetup status vol
echo "== fvpctl stats vol"; fvpctl stats vol
echo "== fvpctl volume drain vol"; fvpctl volume drain vol
dmsetup remove vol slow
fvpctl pool destroy demo
echo "ok 1 demo"
