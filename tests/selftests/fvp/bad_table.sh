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
# An fvp volume to stack on (over a RAM disk, so the other cases' disk stays free).
dmsetup create fvp_lower --table "0 8 fvp $(fvp_devno /dev/ram0) bt write-back"

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
option instead of device|0 8 fvp mode=wb bt write-back|invalid <backing-dev> argument
an fvp volume as the backing device|0 8 fvp /dev/mapper/fvp_lower bt write-back|the backing device is an fvp volume"


# A program costs this emulated debug kernel about half a second to start: each case
# runs one (dmsetup). The kernel log is read once at the end; a marker written to
# /dev/kmsg before each case tells its messages from the others'.
n=$(echo "$cases" | wc -l)
ktap_plan "$n"
rm -f /tmp/bad_table.res
i=0
while IFS='|' read -r name table message; do
  i=$((i + 1))
  echo "fvp-test: bad_table case $i" >/dev/kmsg
  out=$(dmsetup create fvp_bad --table "$table" 2>&1 </dev/null); rc=$?
  why=
  [ $rc -ne 0 ] || { why="$why; accepted"; dmsetup remove fvp_bad; }
  case "$out" in *"Invalid argument"*) ;; *) why="$why; dmsetup said: $out" ;; esac
  left=no
  [ ! -e /dev/mapper/fvp_bad ] || left=yes
  for f in /sys/block/dm-*/dm/name; do
    [ -e "$f" ] && read -r dm <"$f" && [ "$dm" = fvp_bad ] && left=yes
  done
  [ $left = no ] || { why="$why; device left behind"; dmsetup remove fvp_bad; }
  echo "$i|$name|$message|$why" >>/tmp/bad_table.res
done <<EOF_CASES
$cases
EOF_CASES
echo "fvp-test: bad_table end" >/dev/kmsg
# Each case's expected message must be among the lines between its marker and the next.
dmesg | awk -F'|' 'FNR == NR { want[$1] = "fvp: " $3; next }
  /fvp-test: bad_table case / { c = $0; sub(/.*case /, "", c); next }
  /fvp-test: bad_table end/ { c = ""; next }
  c != "" && index($0, want[c]) { seen[c] = 1 }
  c != "" { log_[c] = log_[c] " / " $0 }
  END { for (k in want) if (!seen[k]) printf "%s|%s\n", k, log_[k] }' /tmp/bad_table.res - >/tmp/bad_table.missing
fails=0
while IFS='|' read -r k name message why; do
  while IFS='|' read -r m log; do
    [ "$m" = "$k" ] && why="$why; not in the kernel log: \"fvp: $message\"; it had: $log"
  done </tmp/bad_table.missing
  if [ -z "$why" ]; then
    ktap_pass "$name is rejected"
  else
    ktap_info "$name: ${why#; }"; ktap_fail "$name is rejected"; fails=1
  fi
done </tmp/bad_table.res
dmsetup remove fvp_lower
fvp_pool_destroy bt
exit $fails
