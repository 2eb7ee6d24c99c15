#!/usr/bin/env python3
"""Power cuts replayed from a dm-log-writes log: the stand-in for pulling the plug.

LOG is the log device of a dm-log-writes target that sat under both a flash pool's
device (sectors [0, FLASH) of it) and its volume's backing device (the rest), while
flushwriter.py (MARK_DEV set) wrote through the volume and marked the log after each
fsync. dm-log-writes logs a write only once a flush covered it (or at once if FUA), so
the log holds what a device with a volatile cache promised, in order.

For each of POINTS cut points (random entries after the mark "formatted", and the
end), TARGET is zeroed and the log replayed onto it: every entry before the last flush
at or before the cut, then a random subset of the writes after it up to the cut (a
volatile cache persists any of them, in any order). The pool is then opened from TARGET
and every write that an fsync covered before the cut (the last "F<k>" mark in the
replayed part) must read back through the volume, whole.

The replayed devices get the names the pool recorded (the volume's backing device is
known by its path): dm devices FLASH_NAME and BACKING_NAME over TARGET.
Prints a line per cut point and a summary; exits 1 on any failure.
Usage: logreplay.py LOG TARGET WRITERLOG FLASH_SECTORS BACKING_SECTORS POINTS SEED FLASH_NAME BACKING_NAME"""
import fcntl
import json
import os
import random
import struct
import subprocess
import sys

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
BLKDISCARD = 0x1277

log_path, target, writer_log = sys.argv[1], sys.argv[2], sys.argv[3]
flash_sectors, backing_sectors, points, seed = (int(x) for x in sys.argv[4:8])
flash_name, backing_name = sys.argv[8], sys.argv[9]
rng = random.Random(seed)

# The log: (flags, sector, nr_sectors, data offset in LOG or mark text), in order.
entries = []
with open(log_path, "rb", buffering=0) as log:
    magic, version, nr, sectorsize = struct.unpack("<QQQI", log.read(28))
    if magic != MAGIC:
        sys.exit(f"{log_path}: not a dm-log-writes log")
    pos = sectorsize
    for _ in range(nr):
        log.seek(pos)
        head = log.read(sectorsize)
        sector, nsec, flags, datalen = struct.unpack("<QQQQ", head[:32])
        if flags & MARK:
            entries.append((flags, 0, 0, head[32:32 + datalen].decode()))
            pos += sectorsize
            continue
        entries.append((flags, sector, nsec, pos + sectorsize))
        pos += sectorsize + (0 if flags & DISCARD else nsec * sectorsize)

# The writer's log: the writes each "F k" line covers. A block discarded after its
# promised write (at any time: the discard may reach the devices before the cut even
# if it was issued after the fsync) holds undefined data: not checked.
promises = {}  # k -> {block: (seq, line of the write)}, cumulative
discards = {}  # block -> lines of its discards
state, pending = {}, {}
with open(writer_log) as f:
    for n, line in enumerate(f):
        if not line.endswith("\n"):
            break
        p = line.split()
        if p and p[0] == "A":
            pending[int(p[1])] = (int(p[2]), n)
        elif p and p[0] == "X":
            discards.setdefault(int(p[1]), []).append(n)
        elif len(p) == 2 and p[0] == "F":
            state.update(pending)
            pending = {}
            promises[int(p[1])] = dict(state)

start = next((i for i, e in enumerate(entries) if e[0] & MARK and e[3] == "formatted"), None)
if start is None:
    sys.exit("no 'formatted' mark in the log")
cuts = sorted(rng.sample(range(start + 1, len(entries)), min(points - 1, len(entries) - start - 1))) + [len(entries)]


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def replay(cut):
    with open(target, "r+b", buffering=0) as t, open(log_path, "rb", buffering=0) as log:
        fcntl.ioctl(t, BLKDISCARD, struct.pack("QQ", 0, (flash_sectors + backing_sectors) * 512))
        last_flush = max((i for i in range(cut) if entries[i][0] & FLUSH), default=-1)
        for i in range(cut):
            flags, sector, nsec, data = entries[i]
            if flags & MARK:
                continue
            # After the last flush, only FUA writes are sure; the others land or not.
            if i > last_flush and not flags & FUA and rng.random() < 0.5:
                continue
            # Sectors of the log are the data device's logical blocks (sectorsize).
            if flags & DISCARD:
                fcntl.ioctl(t, BLKDISCARD, struct.pack("QQ", sector * sectorsize, nsec * sectorsize))
            elif nsec:
                log.seek(data)
                t.seek(sector * sectorsize)
                t.write(log.read(nsec * sectorsize))
        # Out of TARGET's page cache before the linear devices over it read it.
        os.fsync(t.fileno())


failures = 0
checked_total = only_pool_total = 0
for n, cut in enumerate(cuts):
    marks = [int(e[3][1:]) for e in entries[:cut] if e[0] & MARK and e[3].startswith("F")]
    k = max(marks, default=0)
    want = {b: s for b, (s, at) in promises.get(k, {}).items() if not any(x > at for x in discards.get(b, []))}
    replay(cut)
    sh("dmsetup", "create", flash_name, "--table", f"0 {flash_sectors} linear {target} 0")
    sh("dmsetup", "create", backing_name, "--table", f"0 {backing_sectors} linear {target} {flash_sectors}")
    # Writes the backing device does not hold: only the pool can bring them back.
    only_pool = 0
    with open(f"/dev/mapper/{backing_name}", "rb", buffering=0) as b:
        for blk, s in want.items():
            b.seek(blk * 4096)
            got = struct.unpack("<QQ", b.read(16))
            if got[0] != blk or got[1] < s:
                only_pool += 1
    opened = sh("fvpctl", "pool", "open", "rp", "--flash", f"/dev/mapper/{flash_name}", "--json", check=False)
    lost = torn = 0
    if opened.returncode != 0:
        print(f"cut {n} (entry {cut} of {len(entries)}, after fsync {k}): pool refused: {opened.stderr.strip()}")
        failures += 1
    else:
        vol = sh("dmsetup", "create", "fvp_rvol", "--table",
                 f"0 {backing_sectors} fvp /dev/mapper/{backing_name} rp write-back", check=False)
        if vol.returncode != 0:
            print(f"cut {n}: volume refused: {vol.stderr.strip()}")
            failures += 1
        else:
            with open("/dev/mapper/fvp_rvol", "rb", buffering=0) as v:
                for blk, s in want.items():
                    v.seek(blk * 4096)
                    data = v.read(4096)
                    gb, gs = struct.unpack("<QQ", data[:16])
                    if gb != blk or data != struct.pack("<QQ", gb, gs) * 256:
                        torn += 1
                        if torn <= 3:
                            print(f"  torn: block {blk} promised seq {s}: reads block {gb} seq {gs}, "
                                  f"{sum(1 for x in range(0, 4096, 16) if data[x:x + 16] == data[:16])} of 256 "
                                  f"copies match its first 16 bytes")
                    elif gs < s:
                        lost += 1
            sh("dmsetup", "remove", "fvp_rvol")
        sh("fvpctl", "pool", "close", "rp")
        found = json.loads(opened.stdout)
        print(f"cut {n} (entry {cut} of {len(entries)}, after fsync {k}): {len(want)} promised blocks, "
              f"{only_pool} only in the pool; reopened with {found['cached_blocks']} cached "
              f"({found['dirty_blocks']} dirty, {found['stale_entries']} stale entries): {lost} lost, {torn} torn")
        failures += 1 if lost or torn else 0
    checked_total += len(want)
    only_pool_total += only_pool
    sh("dmsetup", "remove", flash_name, backing_name)
print(f"{len(cuts)} power cuts replayed from {len(entries)} logged entries: {checked_total} promised blocks checked, "
      f"{only_pool_total} of them only in the pool, {failures} failures")
sys.exit(1 if failures or only_pool_total == 0 else 0)
