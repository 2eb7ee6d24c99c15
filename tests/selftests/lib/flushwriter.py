#!/usr/bin/env python3
"""Writes 4 KiB blocks at random to DEV with O_DIRECT (THREADS writers, thread t only
the blocks b with b % THREADS == t, one write in flight each), and every FLUSH_S
fsyncs DEV. LOG gets "A <block> <seq>" for each completed write and, after each fsync
that returned, "F": every A line above an F line was completed before that fsync was
issued, so the device promised it. Each block holds (block, seq) as two little-endian
u64, repeated. Creates READY once READY_AFTER fsyncs returned. Runs until killed or
SECONDS pass. Sequence numbers start after FIRST_SEQ.

With MARK_DEV set (a dm-log-writes device), each F line is "F <k>" and the log device
gets the mark "F<k>" after fsync k returned; with MIX=1, thread 0 also discards
blocks ("X <block>": their content is undefined from then on) and makes some writes
with O_DSYNC (FUA), for tests/selftests/lib/logreplay.py.
Usage: flushwriter.py DEV LOG READY BLOCKS SECONDS [FIRST_SEQ [READY_AFTER [THREADS]]]"""
import fcntl
import subprocess
import mmap
import os
import random
import struct
import sys
import threading
import time

FLUSH_S = 0.3

dev, log, ready, nblocks, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
seq = int(sys.argv[6]) if len(sys.argv) > 6 else 0
ready_after = int(sys.argv[7]) if len(sys.argv) > 7 else 10
threads = int(sys.argv[8]) if len(sys.argv) > 8 else 4
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
dsync = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
mark_dev = os.environ.get("MARK_DEV")
mix = os.environ.get("MIX") == "1"
BLKDISCARD = 0x1277
lf = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
end = time.monotonic() + seconds
lock = threading.Lock()
acks = []
failure = None
stop = threading.Event()


def writer(t):
    global seq, failure
    buf = mmap.mmap(-1, 4096)
    rng = random.Random()
    while not stop.is_set() and time.monotonic() < end:
        block = rng.randrange(t, nblocks, threads)
        kind = rng.randrange(10) if mix and t == 0 else 0
        if kind == 9:
            # Logged before the discard is issued: the block is never checked again.
            with lock:
                acks.append(b"X %d\n" % block)
            try:
                fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", block * 4096, 4096))
            except OSError as e:
                with lock:
                    failure = f"discard of block {block} failed: {os.strerror(e.errno)}"
                stop.set()
                return
            continue
        with lock:
            seq += 1
            mine = seq
        buf.seek(0)
        buf.write(struct.pack("<QQ", block, mine) * 256)
        try:
            os.pwrite(dsync if kind == 8 else fd, buf, block * 4096)
        except OSError as e:
            with lock:
                failure = f"write of block {block} seq {mine} failed: {os.strerror(e.errno)}"
            stop.set()
            return
        with lock:
            acks.append(b"A %d %d\n" % (block, mine))


workers = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
for w in workers:
    w.start()
logged = 0
flushes = 0
while any(w.is_alive() for w in workers):
    time.sleep(FLUSH_S)
    with lock:
        n = len(acks)
    # The writes acknowledged so far, then the flush that covers them.
    try:
        os.fsync(fd)
    except OSError as e:
        print(f"fsync failed: {os.strerror(e.errno)}", flush=True)
        stop.set()
        sys.exit(2)
    flushes += 1
    if mark_dev:
        subprocess.run(["dmsetup", "message", mark_dev, "0", "mark", f"F{flushes}"], check=True)
        os.write(lf, b"".join(acks[logged:n]) + b"F %d\n" % flushes)
    else:
        os.write(lf, b"".join(acks[logged:n]) + b"F\n")
    logged = n
    if flushes == ready_after:
        open(ready, "w").close()
# The rest (no flush covers them): discards logged here are still excluded from checks.
os.write(lf, b"".join(acks[logged:]))
if failure:
    print(failure, flush=True)
    sys.exit(2)
print(f"{len(acks)} writes, {flushes} flushes", flush=True)
