#!/usr/bin/env python3
"""Writes 4 KiB blocks at random to DEV with O_DIRECT, one at a time, and logs
"<block> <seq>" to LOG for each write that completed (acknowledged). Each block holds
(block, seq) as two little-endian u64, repeated. Creates READY after READY_AFTER acks
(default 200).
Runs until killed or SECONDS pass; sequence numbers start after FIRST_SEQ (default 0), so
that tests sharing a disk never mistake an earlier test's block for a newer write.
A failed write is reported (errno) and ends the run with status 2. At the end it
prints the count and the longest time one write took (a stall shows there).

The log is appended in batches (every 0.2 s, and at the end): one write(2) per ack to
the 9p results share cost ~140 ms each under TCG and left the volume idle between
writes. Only completed writes are ever logged, so a batch lost when the guest is
killed only leaves those writes unchecked, never a false "lost".
Usage: ackwriter.py DEV LOG READY BLOCKS SECONDS [FIRST_SEQ [READY_AFTER]]"""
import mmap
import os
import random
import struct
import sys
import time

FLUSH_EVERY_S = 0.2

dev, log, ready, nblocks, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
lf = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
buf = mmap.mmap(-1, 4096)
seq = first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
ready_after = int(sys.argv[7]) if len(sys.argv) > 7 else 200
end = time.monotonic() + seconds
longest = 0.0
pending = []
flushed_at = time.monotonic()


def flush():
    global pending, flushed_at
    if pending:
        os.write(lf, b"".join(pending))
        pending = []
    flushed_at = time.monotonic()


while time.monotonic() < end:
    block = random.randrange(nblocks)
    seq += 1
    buf.seek(0)
    buf.write(struct.pack("<QQ", block, seq) * 256)
    try:
        t = time.monotonic()
        os.pwrite(fd, buf, block * 4096)
        done = time.monotonic()
        longest = max(longest, done - t)
    except OSError as e:
        flush()
        print(f"write of block {block} seq {seq} failed: {os.strerror(e.errno)} ({e.errno})", flush=True)
        sys.exit(2)
    pending.append(b"%d %d\n" % (block, seq))
    if done - flushed_at >= FLUSH_EVERY_S:
        flush()
    if seq == first + ready_after:
        flush()
        open(ready, "w").close()
flush()
print(f"{seq - first} writes acknowledged; longest write {longest * 1000:.0f} ms", flush=True)
