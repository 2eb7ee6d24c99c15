#!/usr/bin/env python3
"""Writes 4 KiB blocks at random to DEV with O_DIRECT and logs "<block> <seq>" to LOG
for each write that completed (acknowledged). Each block holds (block, seq) as two
little-endian u64, repeated. Creates READY after READY_AFTER acks (default 200).
Runs until killed or SECONDS pass; sequence numbers start after FIRST_SEQ (default 0), so
that tests sharing a disk never mistake an earlier test's block for a newer write.
A failed write is reported (errno) and ends the run with status 2. At the end it
prints the count and the longest time one write took (a stall shows there).

THREADS writers (default 1) each write one at a time, thread t only the blocks b with
b % THREADS == t: a block never has two writes in flight, so the last acknowledged
write of a block is the one the device must hold. A replicated write waits for a
network round trip (tens of milliseconds between emulated guests): several writers
keep the replication path busy and reach READY_AFTER sooner.

The log is appended in batches (every 0.2 s, and at the end): one write(2) per ack to
the 9p results share cost ~140 ms each under TCG and left the volume idle between
writes. Only completed writes are ever logged, so a batch lost when the guest is
killed only leaves those writes unchecked, never a false "lost".
Usage: ackwriter.py DEV LOG READY BLOCKS SECONDS [FIRST_SEQ [READY_AFTER [THREADS]]]"""
import mmap
import os
import random
import struct
import sys
import threading
import time

FLUSH_EVERY_S = 0.2

dev, log, ready, nblocks, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
ready_after = int(sys.argv[7]) if len(sys.argv) > 7 else 200
threads = int(sys.argv[8]) if len(sys.argv) > 8 else 1
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
lf = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
end = time.monotonic() + seconds

lock = threading.Lock()
seq = first
acked = 0
longest = 0.0
pending = []
failure = None
ready_made = False
stop = threading.Event()


def flush():
    """Appends the acknowledged writes so far to the log (outside the lock: a write to
    the 9p share is slow), then creates READY once READY_AFTER of them are in it. Only
    the main thread calls it, so the log keeps the order of the acknowledgements."""
    global pending, ready_made
    with lock:
        batch, pending = pending, []
        count = acked
    if batch:
        os.write(lf, b"".join(batch))
    if not ready_made and count >= ready_after:
        open(ready, "w").close()
        ready_made = True


def writer(t):
    global seq, acked, longest, failure
    buf = mmap.mmap(-1, 4096)
    rng = random.Random()
    while not stop.is_set() and time.monotonic() < end:
        block = rng.randrange(t, nblocks, threads)
        with lock:
            seq += 1
            mine = seq
        buf.seek(0)
        buf.write(struct.pack("<QQ", block, mine) * 256)
        try:
            start = time.monotonic()
            os.pwrite(fd, buf, block * 4096)
            took = time.monotonic() - start
        except OSError as e:
            with lock:
                failure = f"write of block {block} seq {mine} failed: {os.strerror(e.errno)} ({e.errno})"
            stop.set()
            return
        with lock:
            longest = max(longest, took)
            pending.append(b"%d %d\n" % (block, mine))
            acked += 1


workers = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
for w in workers:
    w.start()
while any(w.is_alive() for w in workers):
    time.sleep(FLUSH_EVERY_S)
    flush()
for w in workers:
    w.join()
flush()
if failure:
    print(failure, flush=True)
    sys.exit(2)
print(f"{acked} writes acknowledged; longest write {longest * 1000:.0f} ms", flush=True)
