#!/bin/sh
# Runs in one guest: the same fio jobs on every device, one after the other, so the
# figures compare within one run. Results: /tmp/out/bench/<device>-<job>.json.
. ../selftests/lib/fvp.sh
set -u
OUT=/tmp/out/bench
mkdir -p $OUT
RUNTIME=${BENCH_RUNTIME:-8}
WS=64M            # working set: fits every cache below
fvp_load
disk=$(fvp_private_disk)
size=$(fvp_sectors "$disk")

# The SAN-like backing device: 1 ms per I/O.
dmsetup create slow --table "0 $size delay $(fvp_devno "$disk") 0 1"
slow=$(fvp_devno /dev/mapper/slow)
# RAM devices (brd, sized on the kernel command line): ram0 plain, ram1 dm-linear,
# ram2 caches for dm-cache / dm-writecache, ram3 dm-cache metadata.
ramsz=$(fvp_sectors /dev/ram0)
dmsetup create lin --table "0 $ramsz linear $(fvp_devno /dev/ram1) 0"

fvpctl pool create bench --ram 128M
fvp_dm_create fvp_wt "0 $size fvp $slow bench write-through sequential_cutoff=0"

run() { # run NAME DEV JOB RW BS QD
  fio --name="$1-$3" --filename="$2" --thread --direct=1 --ioengine=libaio --rw="$4" \
    --bs="$5" --iodepth="$6" --size=$WS --time_based --runtime=$RUNTIME --ramp_time=1 \
    --randseed=42 --norandommap --group_reporting --output-format=json >"$OUT/$1-$3.json" 2>/dev/null
  echo "# $1 $3 done"
}
warm() { # read the working set three times so that caches promote it
  for i in 1 2 3; do
    fio --name=warm --filename="$1" --thread --direct=1 --ioengine=libaio --rw=read --bs=64k \
      --iodepth=8 --size=$WS >/dev/null 2>&1
  done
}
jobs() { # jobs NAME DEV [reads|writes|all]
  case ${3:-all} in all|reads)
    run "$1" "$2" randread-qd1 randread 4k 1
    run "$1" "$2" randread-qd32 randread 4k 32
    run "$1" "$2" seqread-64k read 64k 8 ;;
  esac
  case ${3:-all} in all|writes)
    run "$1" "$2" randwrite-qd1 randwrite 4k 1
    run "$1" "$2" randwrite-qd32 randwrite 4k 32 ;;
  esac
}

jobs backing /dev/mapper/slow
jobs brd /dev/ram0
jobs dm-linear /dev/mapper/lin
warm /dev/mapper/fvp_wt
jobs fvp-wt /dev/mapper/fvp_wt
dmsetup remove fvp_wt
fvp_dm_create fvp_wb "0 $size fvp $slow bench write-back sequential_cutoff=0"
warm /dev/mapper/fvp_wb
jobs fvp-wb /dev/mapper/fvp_wb
dmsetup remove fvp_wb

# dm-cache, writeback, smq, cache on brd.
dd if=/dev/zero of=/dev/ram3 bs=1M count=8 2>/dev/null
dmsetup create dmcache --table "0 $size cache $(fvp_devno /dev/ram3) $(fvp_devno /dev/ram2) $slow 64 1 writeback smq 0"
warm /dev/mapper/dmcache
jobs dm-cache /dev/mapper/dmcache
dmsetup status dmcache >$OUT/dm-cache.status
dmsetup remove dmcache

# dm-writecache on brd (a write cache: reads of unwritten blocks go to the backing).
dd if=/dev/zero of=/dev/ram2 bs=1M count=8 2>/dev/null
dmsetup create wcache --table "0 $size writecache s $slow $(fvp_devno /dev/ram2) 4096 0"
jobs dm-writecache /dev/mapper/wcache writes
dmsetup remove wcache

# An fvp flash pool on the same brd device as dm-writecache's (ram2), over the same
# backing device: hits (after warming) against dm-linear over brd (the floor), write-back
# writes against dm-writecache in SSD mode. Then the pool, full of the working set, is
# closed and reopened: the reopen time is recorded.
dd if=/dev/zero of=/dev/ram2 bs=1M count=8 2>/dev/null
fvpctl pool create fbench --flash /dev/ram2 --force >/dev/null
fvp_dm_create fvp_fwb "0 $size fvp $slow fbench write-back"
warm /dev/mapper/fvp_fwb
jobs fvp-flash /dev/mapper/fvp_fwb
dmsetup status fvp_fwb >$OUT/fvp-flash.status
dmsetup remove fvp_fwb
fvpctl pool close fbench
fvpctl pool open fbench --flash /dev/ram2 --json >$OUT/fvp-flash-reopen.json
fvpctl pool close fbench
dmsetup remove lin slow
fvp_pool_destroy bench
echo "ok 1 bench"
