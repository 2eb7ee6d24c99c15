#!/usr/bin/env python3
"""Writes 4 KiB blocks at random to DEV with O_DIRECT, one at a time, and appends
"<block> <seq>" to LOG after each write completed (acknowledged). Each block holds
(block, seq) as two little-endian u64, repeated. Creates READY after 200 acks.
Runs until killed or SECONDS pass; sequence numbers start after FIRST_SEQ (default 0), so
that tests sharing a disk never mistake an earlier test's block for a newer write.
A failed write is reported (errno) and ends the run with status 2. At the end it
prints the longest time one write took (a stall shows there).
Usage: ackwriter.py DEV LOG READY BLOCKS SECONDS [FIRST_SEQ]"""
import mmap
import os
import random
import struct
import sys
import time

dev, log, ready, nblocks, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
lf = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
buf = mmap.mmap(-1, 4096)
seq = first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
end = time.time() + seconds
longest = 0.0
while time.time() < end:
    block = random.randrange(nblocks)
    seq += 1
    buf.seek(0)
    buf.write(struct.pack("<QQ", block, seq) * 256)
    try:
        t = time.monotonic()
        os.pwrite(fd, buf, block * 4096)
        longest = max(longest, time.monotonic() - t)
    except OSError as e:
        print(f"write of block {block} seq {seq} failed: {os.strerror(e.errno)} ({e.errno})", flush=True)
        sys.exit(2)
    # One write(2) per ack: on the 9p results share it reaches the host before returning.
    os.write(lf, b"%d %d\n" % (block, seq))
    if seq == first + 200:
        open(ready, "w").close()
print(f"{seq - first} writes acknowledged; longest write {longest * 1000:.0f} ms", flush=True)
