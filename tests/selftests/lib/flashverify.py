#!/usr/bin/env python3
"""Checks DEV against LOG (see flushwriter.py): every block holds its (block, seq)
pattern, whole, with seq at least that of its last write logged before the last F line
(flushed: promised). With --backing IMAGE it only counts the promised writes the
backing device IMAGE does not hold yet (the pool alone does) and exits 1 if fewer than
MIN: a crash with nothing only in the pool proves nothing about recovery.
Prints one summary line; exits 1 on a lost or torn block.
Usage: flashverify.py DEV LOG [--backing IMAGE MIN]"""
import struct
import sys

args = sys.argv[1:]
backing = None
if "--backing" in args:
    i = args.index("--backing")
    backing, need = args[i + 1], int(args[i + 2])
    del args[i:i + 3]
dev, log = args
promised, pending = {}, {}
discarded = set()
writes = 0
with open(log) as f:
    for line in f:
        if not line.endswith("\n"):
            break
        p = line.split()
        if p and p[0] == "F":
            for b, s in pending.items():
                promised[b] = max(promised.get(b, 0), s)
            pending = {}
        elif len(p) == 2 and p[0] == "X":
            discarded.add(int(p[1]))
        elif len(p) == 3 and p[0] == "A":
            b, s = int(p[1]), int(p[2])
            pending[b] = max(pending.get(b, 0), s)
            writes += 1
for b in discarded:
    promised.pop(b, None)


def read(path, block):
    with open(path, "rb", buffering=0) as f:
        f.seek(block * 4096)
        data = f.read(4096)
    b, s = struct.unpack("<QQ", data[:16])
    return data, b, s


if backing is not None:
    older = sum(1 for b, s in promised.items() if read(backing, b)[2] < s or read(backing, b)[1] != b)
    print(f"{writes} writes logged, {len(promised)} blocks promised by a flush, {older} of them "
          f"only in the pool (at least {need} needed)")
    sys.exit(0 if older >= need else 1)
lost, torn = [], []
for b, s in sorted(promised.items()):
    data, gb, gs = read(dev, b)
    if data != struct.pack("<QQ", gb, gs) * 256 or gb != b:
        torn.append((b, gb, gs))
    elif gs < s:
        lost.append((b, s, gs))
print(f"{writes} writes logged, {len(promised)} blocks promised by a flush: {len(lost)} lost, {len(torn)} torn or "
      f"of another block" + (f"; first lost {lost[:3]}" if lost else "") + (f"; first torn {torn[:3]}" if torn else ""))
sys.exit(1 if lost or torn else 0)
