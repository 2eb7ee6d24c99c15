#!/bin/sh
# Helpers shared by fvp's guest tests. Sourced after lib/ktap.sh.
FVP_KO="$FVP_REPO/fvp.ko"

fvp_load() { lsmod | grep -q '^fvp ' || insmod "$FVP_KO"; }
fvp_unload() { ! lsmod | grep -q '^fvp ' || rmmod fvp; }

# The first virtio disk that is not shared by all guests.
fvp_private_disk() {
  for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = "fvp-private0" ] && { echo "/dev/${d##*/}"; return; }
  done
  echo /dev/vda
}

# major:minor of a block device node (dmsetup tables inside the chroot need it).
fvp_devno() { printf '%d:%d\n' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")"; }

fvp_sectors() { blockdev --getsz "$1"; }

# Kernel messages since the last call to fvp_dmesg_mark.
fvp_dmesg_mark() { _fvp_dmesg_lines=$(dmesg | wc -l); }
fvp_dmesg_new() { dmesg | tail -n +$((_fvp_dmesg_lines + 1)); }

# fvp_dm_create NAME TABLE: creates a dm device and checks its node is a block device
# (so that a later test never writes to a regular file by mistake).
fvp_dm_create() {
  dmsetup create "$1" --table "$2" && test -b "/dev/mapper/$1"
}

# fvp_pool_create NAME SIZE: a RAM pool (SIZE with units, e.g. 16M).
fvp_pool_create() { fvpctl pool create "$1" --ram "$2" >/dev/null; }
fvp_pool_destroy() { fvpctl pool destroy "$1" >/dev/null; }

# fvp_status_field NAME FIELD: one field of the volume's `dmsetup status` line
# (see docs/target.md): block_size policy_requested policy_effective read_hits
# read_misses write_hits dirty destaged evictions bypassed reads writes pool, and the
# last three, after any replication fields: health destage_errors io_errors.
fvp_status_field() {
  dmsetup status "$1" | awk -v f="$2" '
    BEGIN { split("block_size policy_requested policy_effective read_hits read_misses write_hits dirty destaged evictions bypassed reads writes pool", n, " ")
            split("health destage_errors io_errors", t, " ") }
    { for (i in n) if (n[i] == f) print $(3 + i)
      for (i in t) if (t[i] == f) print $(NF - 3 + i) }'
}

# fvp_fsync DEV: fsync(2) of a block device; fails with the flush's error (EIO).
fvp_fsync() { python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDWR))' "$1" 2>/dev/null; }

# Flush requests the disk completed (field 16 of /sys/block/<dev>/stat).
fvp_disk_flushes() { awk '{ print $16 }' "/sys/block/${1#/dev/}/stat"; }

# md5 of stdin; md5 of 1 MiB read from DEV at 64 KiB block SKIP (direct I/O).
md5() { md5sum | cut -d' ' -f1; }
read_md5() { dd if="$1" bs=64k skip="$2" count=16 iflag=direct 2>/dev/null | md5; }
