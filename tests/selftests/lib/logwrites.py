#!/usr/bin/env python3
"""Flush and FUA semantics through dm-log-writes (the xfstests technique).

  logwrites.py run DEV LOGWRITES_DM_NAME OPS SEED EXPECT.json
      A sequential mix of 4 KiB writes, O_DSYNC (FUA) writes, discards, zero-outs and
      fsyncs over the first 4 MiB of DEV. Every block write carries (block, version) in
      each of its 16-byte slots. After each fsync and each FUA write completes, it puts a
      mark in the log (`dmsetup message NAME 0 mark ...`) and records what must be
      durable there: after an fsync, every block's last completed version (discarded
      blocks: anything); after a FUA write, that block's version.
  logwrites.py check LOGDEV EXPECT.json
      Replays the log: at each fsync mark, the image as of the log's last FLUSH before
      the mark (a power cut right after the flush) must hold exactly the recorded
      versions; at each FUA mark, the image as of the mark must hold the FUA write's
      version (no write-back of an older copy may land after it). Prints one line and
      exits 1 on any violation.
"""
import fcntl, json, mmap, os, random, struct, subprocess, sys

BLOCK = 4096
REGION = 1024  # blocks
MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
BLKDISCARD, BLKZEROOUT = 0x1277, 0x127F


def content(block, version):
    return struct.pack("<QQ", block, version) * (BLOCK // 16)


def run(dev, lw, ops, seed, expect):
    rnd = random.Random(seed)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    fua = os.open(dev, os.O_RDWR | os.O_DIRECT | os.O_DSYNC)
    buf = mmap.mmap(-1, BLOCK)
    model = {}  # block -> version (0: zeroes), None: discarded (anything)
    version = 0
    discards = 0
    marks = []

    def mark(name, must):
        subprocess.run(["dmsetup", "message", lw, "0", "mark", name], check=True)
        marks.append({"name": name, "must": must})

    for i in range(ops):
        r = rnd.random()
        b = rnd.randrange(REGION)
        if r < 0.72 or r >= 0.97:
            version += 1
            buf.seek(0)
            buf.write(content(b, version))
            os.pwrite(fua if r >= 0.97 else fd, buf, b * BLOCK)
            model[b] = version
            if r >= 0.97:
                mark("fua%d" % i, {str(b): version})
        elif r < 0.80:
            n = min(rnd.randrange(1, 17), REGION - b)
            try:
                fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", b * BLOCK, n * BLOCK))
                discards += 1
            except OSError:
                # Not supported here: the blocks may or may not be discarded.
                pass
            for k in range(b, b + n):
                model[k] = None
        elif r < 0.88:
            n = min(rnd.randrange(1, 17), REGION - b)
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", b * BLOCK, n * BLOCK))
            for k in range(b, b + n):
                model[k] = 0
        else:
            os.fsync(fd)
            mark("sync%d" % i, {str(k): v for k, v in model.items() if v is not None})
    os.fsync(fd)
    json.dump({"marks": marks, "writes": version}, open(expect, "w"))
    print("%d operations, %d block writes, %d discards, %d marks" % (ops, version, discards, len(marks)))


def check(logdev, expect):
    exp = json.load(open(expect))
    by_name = {m["name"]: m["must"] for m in exp["marks"]}
    f = open(logdev, "rb")
    sup = f.read(32)
    magic, ver, nr, ss = struct.unpack("<QQQI", sup[:28])
    if magic != MAGIC:
        print("not a dm-log-writes log")
        return 1
    state = {}  # block -> (block, version) read, or "torn"
    at_flush = dict(state)
    pos = 1
    bad = []
    checked = 0
    flushes = 0
    for _ in range(nr):
        f.seek(pos * ss)
        sector, nsec, flags, dlen = struct.unpack("<QQQQ", f.read(32))
        if flags & MARK:
            f.seek(pos * ss + 32)
            name = f.read(dlen).split(b"\0")[0].decode()
            pos += 1
            must = by_name.get(name)
            if must is None:
                continue
            view = at_flush if name.startswith("sync") else state
            checked += 1
            for k, v in must.items():
                got = view.get(int(k), (int(k), 0))
                if got != (int(k), v):
                    bad.append("%s: block %s holds %s, expected version %d" % (name, k, got, v))
            continue
        pos += 1
        if flags & FLUSH:
            # A preflush: what completed before it is durable, not its own data.
            flushes += 1
            at_flush = dict(state)
        if not (flags & DISCARD) and nsec:
            f.seek(pos * ss)
            data = f.read(nsec * ss)
            first = sector * ss
            for off in range(0, len(data), BLOCK):
                blk, rem = divmod(first + off, BLOCK)
                if rem or blk >= REGION:
                    continue
                d = data[off:off + BLOCK]
                if d == bytes(BLOCK):
                    state[blk] = (blk, 0)
                elif d == d[:16] * (BLOCK // 16):
                    state[blk] = struct.unpack("<QQ", d[:16])
                else:
                    state[blk] = "torn"
            pos += nsec
    print("%d log entries, %d flushes, %d marks checked, %d violations%s" % (
        nr, flushes, checked, len(bad), (": " + "; ".join(bad[:5])) if bad else ""))
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3]))
