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
# ram2 caches for dm-cache / dm-writecache / the flash pool / bcache, ram3 dm-cache
# metadata; ram4 on, made on demand, hold the 1 GiB flash pool at the end.
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

# bcache in writeback mode, on the same brd device (ram2) over the same backing device:
# like the flash pool, a write-back cache kept on flash, and the same jobs (hits after
# warming, write-back writes). Built into the kernel; make-bcache (bcache-tools) comes
# from the host root like fio. No udev in the guest: the devices are registered,
# attached and tuned by hand. sequential_cutoff=0 lets the sequential warm-up fill the
# cache; congestion thresholds of 0 keep bcache from sending I/O around a cache it
# measures as slow (under TCG, latencies are the emulator's). Its counters lag by up to
# 13.6 s (a timer folds them into stats_total), hence a sleep before each reading. Run
# after the flash pool's row so that row's ram2 is as before; torn down and wiped after.
# A step that fails skips the row with the reason in bcache.skipped, not a row of misses.
bcache_devs() { ls -d /sys/block/bcache* 2>/dev/null; }
bcache_csets() { ls -d /sys/fs/bcache/*-*-*-*-* 2>/dev/null; }
bcache_skip() { echo "$*" >$OUT/bcache.skipped; echo "# bcache skipped: $*"; return 1; }
bcache_stats() { # bcache_stats BCACHE: its stats_total counters as JSON
  s=/sys/block/$1/bcache/stats_total
  printf '{"cache_hits": %s, "cache_misses": %s, "cache_bypass_hits": %s, "cache_bypass_misses": %s, "cache_miss_collisions": %s, "bypassed": "%s"}' \
    "$(cat $s/cache_hits)" "$(cat $s/cache_misses)" "$(cat $s/cache_bypass_hits)" \
    "$(cat $s/cache_bypass_misses)" "$(cat $s/cache_miss_collisions)" "$(cat $s/bypassed)"
}
bcache_use() { # bcache_use CSET: how full the cache is. Above 70% of buckets in use (after
  # its garbage collection's last count) bcache writes through instead of back.
  echo "$(cat /sys/fs/bcache/$1/cache_available_percent)% available;" \
    "$(grep -E '^(Unused|Clean|Dirty|Metadata):' /sys/fs/bcache/$1/cache0/priority_stats | tr -s '\t\n' '  ')"
}
bcache_wipe() { # the cache's superblock on ram2, the backing device's at 4 KiB on slow
  wipefs -a -q /dev/ram2 /dev/mapper/slow 2>/dev/null
  dd if=/dev/zero of=/dev/ram2 bs=1M count=8 2>/dev/null
  dd if=/dev/zero of=/dev/mapper/slow bs=4k count=4 oflag=direct 2>/dev/null
}
bcache_row() {
  command -v make-bcache >/dev/null || bcache_skip "make-bcache not found (bcache-tools not installed on the host)" || return 1
  [ -e /sys/fs/bcache/register ] || bcache_skip "no /sys/fs/bcache/register (bcache not in the kernel)" || return 1
  bcache_wipe
  # 64 KiB buckets: the kernel refuses a cache of fewer than 513 buckets ("nbuckets is
  # too small"), and the default 512 KiB gives ram2's 256 MiB only 512.
  make-bcache -C /dev/ram2 --bucket 64k >$OUT/bcache-make.log 2>&1 \
    || bcache_skip "make-bcache -C /dev/ram2: $(tail -1 $OUT/bcache-make.log)" || return 1
  make-bcache -B /dev/mapper/slow --writeback >>$OUT/bcache-make.log 2>&1 \
    || bcache_skip "make-bcache -B /dev/mapper/slow: $(tail -1 $OUT/bcache-make.log)" || return 1
  for d in /dev/ram2 /dev/mapper/slow; do
    echo $d >/sys/fs/bcache/register 2>/tmp/bcache.err \
      || bcache_skip "registering $d: $(cat /tmp/bcache.err) $(dmesg | grep -i bcache | tail -1)" || return 1
  done
  cset=$(bcache_csets | head -1); cset=${cset##*/}
  b=$(bcache_devs | head -1); b=${b##*/}
  [ -n "$cset" ] && [ -n "$b" ] \
    || bcache_skip "no cache set ($cset) or no bcache device ($b) after registering: $(dmesg | grep -i bcache | tail -1)" || return 1
  # make-bcache -B alone leaves the backing device detached: attach it to the cache set.
  if [ "$(cat /sys/block/$b/bcache/state)" = "no cache" ]; then
    echo "$cset" >/sys/block/$b/bcache/attach 2>/tmp/bcache.err \
      || bcache_skip "attaching $b to $cset: $(cat /tmp/bcache.err) $(dmesg | grep -i bcache | tail -1)" || return 1
  fi
  echo writeback >/sys/block/$b/bcache/cache_mode
  echo 0 >/sys/block/$b/bcache/sequential_cutoff
  echo 0 >/sys/fs/bcache/$cset/congested_read_threshold_us
  echo 0 >/sys/fs/bcache/$cset/congested_write_threshold_us
  state=$(cat /sys/block/$b/bcache/state) mode=$(cat /sys/block/$b/bcache/cache_mode)
  [ "$state" != "no cache" ] && echo "$mode" | grep -q '\[writeback\]' \
    || bcache_skip "$b not attached in writeback mode (state $state, cache_mode $mode)" || return 1
  echo "# bcache: /dev/$b, cache set $cset on /dev/ram2, backing /dev/mapper/slow, $mode"
  warm /dev/$b
  sleep 15; after_warm=$(bcache_stats $b)
  jobs bcache /dev/$b reads
  sleep 15; after_reads=$(bcache_stats $b) use_reads=$(bcache_use $cset)
  jobs bcache /dev/$b writes
  use_writes=$(bcache_use $cset)
  sleep 15; after_writes=$(bcache_stats $b)
  printf '{"device": "/dev/%s", "cset": "%s", "state": "%s", "sequential_cutoff": "%s", "dirty_data": "%s", "use_after_reads": "%s", "use_after_writes": "%s", "after_warm": %s, "after_reads": %s, "after_writes": %s}\n' \
    "$b" "$cset" "$(cat /sys/block/$b/bcache/state)" "$(cat /sys/block/$b/bcache/sequential_cutoff)" \
    "$(cat /sys/block/$b/bcache/dirty_data)" "$use_reads" "$use_writes" \
    "$after_warm" "$after_reads" "$after_writes" >$OUT/bcache-stats.json
  echo "# bcache stats: $(cat $OUT/bcache-stats.json)"
}
bcache_teardown() {
  # Stop the device, then the cache set ("stop", not "unregister": unregistering would
  # first write every dirty block back to the 1 ms device). Dirty data is dropped.
  for d in $(bcache_devs); do echo 1 >"$d/bcache/stop"; done
  for c in $(bcache_csets); do echo 1 >"$c/stop"; done
  t=0
  while [ -n "$(bcache_devs)$(bcache_csets)" ] && [ $t -lt 120 ]; do sleep 0.5; t=$((t + 1)); done
  [ -z "$(bcache_devs)$(bcache_csets)" ] || { echo "# bcache did not stop: $(bcache_devs) $(bcache_csets)"; return 1; }
  bcache_wipe
}
bcache_row
bcache_teardown
dmsetup remove lin slow
fvp_pool_destroy bench

# A full 1 GiB flash pool, closed and reopened: the reopen time at that size. 1 GiB of
# slots (262,144 blocks of 4 KiB) takes 2,048 entry blocks plus 10 for the superblocks
# and the volume table (docs/flash.md, Layout). Its device: RAM disks that brd makes
# when their node is first opened (ram4 on, 256 MiB each), joined by dm-linear, so the
# rows above keep theirs (bench.sh gives the guest the memory). The volume over it is
# 1 GiB of null_blk (writes dropped: write-back for room costs nothing), written whole
# with large sequential writes; the pool keeps 1/64 of its slots free by evicting clean
# blocks, so full means about 98% cached. The pool is then reopened three times.
big_skip() { echo "$*" >$OUT/fvp-flash-1g.skipped; echo "# 1 GiB flash pool skipped: $*"; return 1; }
big_row() {
  slots=262144 vol=2097152
  [ -b /dev/nullb0 ] || big_skip "no /dev/nullb0 (null_blk) for the volume's backing device" || return 1
  left=$(( (10 + slots / 128 + slots) * 8 )) start=0 i=4 table=
  while [ $left -gt 0 ]; do
    [ -b /dev/ram$i ] || mknod /dev/ram$i b 1 $i
    n=$(fvp_sectors /dev/ram$i 2>/dev/null) || big_skip "brd made no /dev/ram$i" || return 1
    [ $n -le $left ] || n=$left
    table="$table$start $n linear $(fvp_devno /dev/ram$i) 0\n"
    start=$((start + n)) left=$((left - n)) i=$((i + 1))
  done
  printf "$table" | dmsetup create fbigdev || big_skip "dm-linear over ram4-ram$((i - 1)): $(printf "$table" | tr '\n' ';')" || return 1
  fvpctl pool create fbig --flash /dev/mapper/fbigdev --force --json >$OUT/fvp-flash-1g-create.json \
    || big_skip "pool create: $(cat $OUT/fvp-flash-1g-create.json)" || return 1
  dmsetup create fbigback --table "0 $vol linear $(fvp_devno /dev/nullb0) 0"
  fvp_dm_create fvp_big "0 $vol fvp $(fvp_devno /dev/mapper/fbigback) fbig write-back" \
    || big_skip "volume over the 1 GiB pool: $(dmesg | tail -1)" || return 1
  fio --name=fill --filename=/dev/mapper/fvp_big --thread --direct=1 --ioengine=libaio --rw=write \
    --bs=1M --iodepth=8 --size=1G --output-format=json >$OUT/fvp-flash-1g-fill.json 2>/dev/null
  dmsetup status fvp_big >$OUT/fvp-flash-1g.status
  dmsetup remove fvp_big
  fvpctl pool list --json >$OUT/fvp-flash-1g-list.json
  echo "# 1 GiB pool before closing: $(fvpctl pool list | grep 'flash pool fbig')"
  for n in 1 2 3; do
    fvpctl pool close fbig
    fvpctl pool open fbig --flash /dev/mapper/fbigdev --json >$OUT/fvp-flash-1g-reopen$n.json
    echo "# 1 GiB pool reopened: $(cat $OUT/fvp-flash-1g-reopen$n.json)"
  done
  fvpctl pool close fbig
  dmsetup remove fbigback fbigdev
}
big_row
echo "ok 1 bench"
