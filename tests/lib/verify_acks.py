#!/usr/bin/env python3
"""Checks that every acknowledged write in ACKS (lines "<block> <seq>", see
tests/selftests/lib/ackwriter.py) is on IMAGE (the shared disk) at BASE bytes: each
block holds its (block, seq) pattern with seq at least the last acknowledged one.
With --overwritten N:SEQ, blocks 0..N-1 were overwritten after a takeover by another
host with (block, SEQ): they must hold exactly that (no stale block written back over
it), and acknowledged writes to them are not checked.
Prints one summary line; exits 1 if any acknowledged write is missing or a stale block
was found.

With --exposed MIN it checks nothing of the above: read right after the owner was
killed and before any peer could write, it counts the acknowledged writes whose block
on IMAGE is older than the acknowledged version ("exposed": only the peers' replicas
hold them), and exits 1 if fewer than MIN (a kill that exposes nothing proves nothing
about recovery).
Usage: verify_acks.py ACKS IMAGE [BASE] [--overwritten N:SEQ | --exposed MIN]"""
import struct
import sys

args = sys.argv[1:]
overwritten, over_seq = 0, 0
exposed_min = None
if "--exposed" in args:
    i = args.index("--exposed")
    exposed_min = int(args[i + 1])
    del args[i:i + 2]
if "--overwritten" in args:
    i = args.index("--overwritten")
    overwritten, over_seq = (int(x) for x in args[i + 1].split(":"))
    del args[i:i + 2]
acks, image = args[0], args[1]
base = int(args[2]) if len(args) > 2 else 0
last = {}
writes = []
count = 0
with open(acks) as f:
    for line in f:
        parts = line.split()
        if len(parts) != 2 or not line.endswith("\n"):
            continue
        block, seq = int(parts[0]), int(parts[1])
        last[block] = max(last.get(block, 0), seq)
        writes.append((block, seq))
        count += 1


def read_block(img, block):
    img.seek(base + block * 4096)
    data = img.read(4096)
    b, s = struct.unpack("<QQ", data[:16])
    return data, b, s


if exposed_min is not None:
    with open(image, "rb") as img:
        on_disk = {}
        for block in last:
            data, b, s = read_block(img, block)
            on_disk[block] = s if b == block and data == struct.pack("<QQ", b, s) * 256 else 0
    exposed = sum(1 for block, seq in writes if on_disk[block] < seq)
    exposed_blocks = sum(1 for block, seq in last.items() if on_disk[block] < seq)
    print(f"{count} acknowledged writes, {exposed} exposed (on {exposed_blocks} of {len(last)} blocks "
          f"the disk held an older version), at least {exposed_min} needed")
    sys.exit(0 if count > 0 and exposed >= exposed_min else 1)

lost, stale = [], []
with open(image, "rb") as img:
    for block, seq in sorted(last.items()):
        if block < overwritten:
            continue
        data, b, s = read_block(img, block)
        if b != block or s < seq or data != struct.pack("<QQ", b, s) * 256:
            lost.append((block, seq, b, s))
    for block in range(overwritten):
        data, b, s = read_block(img, block)
        if data != struct.pack("<QQ", block, over_seq) * 256:
            stale.append((block, b, s))
checked = sum(1 for b in last if b >= overwritten)
msg = f"{count} acknowledged writes, {checked} blocks checked, {len(lost)} lost"
if lost:
    msg += f"; first: block {lost[0][0]} acked seq {lost[0][1]}, disk has block {lost[0][2]} seq {lost[0][3]}"
if overwritten:
    msg += f"; {overwritten} blocks overwritten after the takeover, {len(stale)} stale"
    if stale:
        msg += f" (first: block {stale[0][0]} holds block {stale[0][1]} seq {stale[0][2]})"
print(msg)
sys.exit(1 if lost or stale or count == 0 else 0)
