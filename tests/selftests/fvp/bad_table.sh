#!/bin/sh
# Every malformed fvp table line is refused with EINVAL and a clear message in the
# kernel log, and leaves no device behind.
. ../lib/ktap.sh
. ../lib/fvp.sh
fvp_load
dev=$(fvp_private_disk)
devno=$(fvp_devno "$dev")
size=$(fvp_sectors "$dev")
fvp_pool_create bt 1M

# name | table | message expected in dmesg
cases="missing device|0 8 fvp|missing argument: <backing-dev>
nonexistent device path|0 8 fvp /dev/does-not-exist bt write-back|cannot open backing device
nonexistent device number|0 8 fvp 250:250 bt write-back|cannot open backing device
length beyond the device|0 $((size + 8)) fvp $devno bt write-back|target length exceeds the backing device size
length not a multiple of the block size|0 12 fvp $devno bt write-back|target length must be a multiple of the block size
missing pool|0 8 fvp $devno|missing argument: <pool>
missing policy|0 8 fvp $devno bt|missing argument: <policy>
unknown policy|0 8 fvp $devno bt write-around|invalid <policy>
nonexistent pool|0 8 fvp $devno nopool write-back|no pool of that name
extra argument|0 8 fvp $devno bt write-back extra|too many arguments
unknown option|0 8 fvp $devno bt write-back cache=ram|unknown option
more than two peers|0 8 fvp $devno bt write-back peers=3|peers: at most 2
peers with write-through|0 8 fvp $devno bt write-through peers=1|peers: replication needs write-back
domain without peers|0 8 fvp $devno bt write-back domain=same|domain: expected same or different
unknown domain rule|0 8 fvp $devno bt write-back peers=1 domain=rack|domain: expected same or different
peers without a cluster|0 8 fvp $devno bt write-back peers=1|peers: no cluster configured
block size other than 4096|0 8 fvp $devno bt write-back block_size=512|block_size: only 4096
bad sequential cutoff|0 8 fvp $devno bt write-back sequential_cutoff=lots|sequential_cutoff: expected a number
option given twice|0 8 fvp $devno bt write-back peers=0 peers=0|option given twice
option instead of device|0 8 fvp mode=wb bt write-back|invalid <backing-dev> argument"


ktap_plan $(echo "$cases" | wc -l)
echo "$cases" | while IFS='|' read -r name table message; do
  fvp_dmesg_mark
  out=$(dmsetup create fvp_bad --table "$table" 2>&1); rc=$?
  log=$(fvp_dmesg_new)
  ok=1
  [ $rc -ne 0 ] || { ok=0; ktap_info "$name: accepted"; dmsetup remove fvp_bad; }
  echo "$out" | grep -q "Invalid argument" || { ok=0; ktap_info "$name: dmsetup said: $out"; }
  echo "$log" | grep -q "fvp: $message" || { ok=0; ktap_info "$name: dmesg: $log"; }
  dmsetup info fvp_bad >/dev/null 2>&1 && { ok=0; ktap_info "$name: device left behind"; dmsetup remove fvp_bad; }
  [ $ok = 1 ] && ktap_pass "$name is rejected" || ktap_fail "$name is rejected"
done | tee /tmp/bad_table.out
fvp_pool_destroy bt
grep -q '^not ok' /tmp/bad_table.out && exit 1
exit 0
