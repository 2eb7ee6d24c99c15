#!/usr/bin/env python3
"""Checks that every acknowledged write in ACKS (lines "<block> <seq>", see
tests/selftests/lib/ackwriter.py) is on IMAGE (the shared disk) at BASE bytes: each
block holds its (block, seq) pattern with seq at least the last acknowledged one.
Prints one summary line; exits 1 if any acknowledged write is missing."""
import struct
import sys

acks, image = sys.argv[1], sys.argv[2]
base = int(sys.argv[3]) if len(sys.argv) > 3 else 0
last = {}
count = 0
with open(acks) as f:
    for line in f:
        parts = line.split()
        if len(parts) != 2 or not line.endswith("\n"):
            continue
        block, seq = int(parts[0]), int(parts[1])
        last[block] = max(last.get(block, 0), seq)
        count += 1
lost = []
with open(image, "rb") as img:
    for block, seq in sorted(last.items()):
        img.seek(base + block * 4096)
        data = img.read(4096)
        b, s = struct.unpack("<QQ", data[:16])
        if b != block or s < seq or data != struct.pack("<QQ", b, s) * 256:
            lost.append((block, seq, b, s))
print(f"{count} acknowledged writes to {len(last)} blocks checked, {len(lost)} lost"
      + (f"; first: block {lost[0][0]} acked seq {lost[0][1]}, disk has block {lost[0][2]} seq {lost[0][3]}" if lost else ""))
sys.exit(1 if lost or count == 0 else 0)
