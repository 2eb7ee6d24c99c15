#!/usr/bin/env python3
"""Turns the benchmark guest's fio JSON files into a table, a JSON summary and a chart.

Usage: bench_report.py RESULTS_DIR OUTPUT_PREFIX
Ratios compare each fvp row with dm-linear over brd (the floor any dm target pays),
with brd (the RAM limit) and with the peers (dm-cache, dm-writecache, bcache), job by
job. Then bcache's hit counts (its reads must be hits for the ratio to mean anything)
and the flash pools' reopen times, the full 1 GiB pool's included.
"""
import json
import os
import shutil
import subprocess
import sys

DEVICES = ["backing", "brd", "dm-linear", "fvp-wt", "fvp-wb", "fvp-flash", "dm-cache", "dm-writecache", "bcache"]
JOBS = ["randread-qd1", "randread-qd32", "seqread-64k", "randwrite-qd1", "randwrite-qd32"]


def load(results, device, job):
    path = os.path.join(results, f"{device}-{job}.json")
    try:
        with open(path) as f:
            text = f.read()
        data = json.loads(text[text.index("{"):])
    except (OSError, ValueError):
        return None
    j = data["jobs"][0]
    side = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
    pct = side["clat_ns"].get("percentile", {})
    return {
        "iops": side["iops"],
        "p50_us": pct.get("50.000000", 0) / 1000,
        "p99_us": pct.get("99.000000", 0) / 1000,
    }


def ratio(a, b, key):
    if not a or not b or not b[key]:
        return None
    return a[key] / b[key]


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def read_json(results, name):
    """A JSON file the guest wrote (None if missing or unreadable)."""
    try:
        with open(os.path.join(results, name)) as f:
            text = f.read()
        return json.loads(text[text.index("{"):])
    except (OSError, ValueError):
        return None


def read_text(results, name):
    try:
        with open(os.path.join(results, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def bcache_summary(results, summary):
    """bcache's read counters over its read jobs (stats_total after warming and after
    the reads): without hits, its read rows would measure the backing device."""
    skipped = read_text(results, "bcache.skipped")
    if skipped:
        summary["bcache"] = {"skipped": skipped}
        print(f"bcache: skipped ({skipped})")
        return
    stats = read_json(results, "bcache-stats.json")
    if not stats:
        return
    keys = ["cache_hits", "cache_misses", "cache_bypass_hits", "cache_bypass_misses"]
    warm, reads = stats["after_warm"], stats["after_reads"]
    d = {k: reads[k] - warm[k] for k in keys}
    total = sum(d.values())
    stats["read_jobs"] = dict(d, hit_ratio=d["cache_hits"] / total if total else None)
    summary["bcache"] = stats
    ratio_text = "-" if not total else f"{d['cache_hits'] / total:.1%}"
    print(f"bcache ({stats['device']}, {stats['state']}, sequential_cutoff {stats['sequential_cutoff']}):"
          f" warm-up {warm['cache_hits']} hits / {warm['cache_misses']} misses;"
          f" read jobs {d['cache_hits']} hits, {d['cache_misses']} misses,"
          f" {d['cache_bypass_hits'] + d['cache_bypass_misses']} bypassed: hit ratio {ratio_text};"
          f" after the writes {stats['dirty_data']} dirty, {stats['after_writes']['bypassed']} bypassed in all")
    if "use_after_writes" in stats:
        print(f"  bcache cache use: after the reads {stats['use_after_reads']}; after the writes {stats['use_after_writes']}")


def full_pool_summary(results, summary):
    """The full 1 GiB flash pool: how it was filled, what it held, how long reopening took."""
    skipped = read_text(results, "fvp-flash-1g.skipped")
    if skipped:
        summary["flash_1g"] = {"skipped": skipped}
        print(f"full 1 GiB flash pool: skipped ({skipped})")
        return
    reopens = [r for r in (read_json(results, f"fvp-flash-1g-reopen{n}.json") for n in (1, 2, 3)) if r]
    if not reopens:
        return
    out = {"reopens": reopens}
    pools = read_json(results, "fvp-flash-1g-list.json") or {}
    before = next((p for p in pools.get("flash_pools", []) if p.get("name") == "fbig"), None)
    out["before_close"] = before
    fill = read_json(results, "fvp-flash-1g-fill.json")
    if fill:
        w = fill["jobs"][0]["write"]
        out["fill"] = {"bytes": w["io_bytes"], "seconds": w["runtime"] / 1000, "mib_s": w["bw"] / 1024}
        print(f"full 1 GiB flash pool: filled with {w['io_bytes'] / 2**30:.2f} GiB in {w['runtime'] / 1000:.1f} s"
              f" ({w['bw'] / 1024:.0f} MiB/s, 1 MiB writes, QD8)")
    if before:
        print(f"  before closing: {before['slots']} slots, {before['slots'] - before['free_slots']} in use"
              f" ({before['clean_blocks']} clean, {before['dirty_blocks']} dirty, {before['held_slots']} held,"
              f" {before['free_slots']} free)")
    for n, r in enumerate(reopens, 1):
        print(f"  reopen {n}: {r['cached_blocks']} cached blocks ({r['dirty_blocks']} dirty) of {r['slots']}"
              f" in {r['open_us'] / 1000:.0f} ms")
    summary["flash_1g"] = out


def main():
    results, prefix = sys.argv[1], sys.argv[2]
    table = {d: {j: load(results, d, j) for j in JOBS} for d in DEVICES}
    summary = {"devices": table, "ratios": {}}
    print(f"{'job':<15} {'device':<14} {'IOPS':>9} {'p50 us':>9} {'p99 us':>9}"
          f" {'IOPS/lin':>9} {'p50/lin':>8} {'IOPS/brd':>9} {'IOPS/dmc':>9} {'IOPS/dmwc':>9} {'IOPS/bc':>9}")
    for job in JOBS:
        for dev in DEVICES:
            r = table[dev][job]
            if r is None:
                continue
            extra = ""
            if dev.startswith("fvp"):
                lin, brd, dmc = table["dm-linear"][job], table["brd"][job], table["dm-cache"][job]
                rs = {
                    "iops_vs_dm_linear": ratio(r, lin, "iops"),
                    "p50_vs_dm_linear": ratio(r, lin, "p50_us"),
                    "iops_vs_brd": ratio(r, brd, "iops"),
                    "iops_vs_dm_cache": ratio(r, dmc, "iops"),
                    "iops_vs_dm_writecache": ratio(r, table["dm-writecache"][job], "iops"),
                    "iops_vs_bcache": ratio(r, table["bcache"][job], "iops"),
                }
                summary["ratios"].setdefault(dev, {})[job] = rs
                extra = (f" {fmt_ratio(rs['iops_vs_dm_linear']):>9} {fmt_ratio(rs['p50_vs_dm_linear']):>8}"
                         f" {fmt_ratio(rs['iops_vs_brd']):>9} {fmt_ratio(rs['iops_vs_dm_cache']):>9}"
                         f" {fmt_ratio(rs['iops_vs_dm_writecache']):>9} {fmt_ratio(rs['iops_vs_bcache']):>9}")
            print(f"{job:<15} {dev:<14} {r['iops']:>9.0f} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f}{extra}")
        print()
    bcache_summary(results, summary)
    try:
        with open(os.path.join(results, "fvp-flash-reopen.json")) as f:
            reopen = json.load(f)
        summary["flash_reopen"] = reopen
        print(f"flash pool reopened with {reopen['cached_blocks']} cached blocks ({reopen['dirty_blocks']} dirty) "
              f"of {reopen['slots']} in {reopen['open_us'] / 1000:.0f} ms")
    except (OSError, ValueError, KeyError):
        pass
    full_pool_summary(results, summary)
    with open(prefix + ".json", "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {prefix}.json")

    # Chart: IOPS per job and device, log scale (gnuplot, if installed).
    if shutil.which("gnuplot"):
        dat = prefix + ".dat"
        with open(dat, "w") as f:
            f.write("job " + " ".join(DEVICES) + "\n")
            for job in JOBS:
                vals = [table[d][job]["iops"] if table[d][job] else 0 for d in DEVICES]
                f.write(job + " " + " ".join(f"{v:.1f}" for v in vals) + "\n")
        script = f"""
set terminal pngcairo size 1200,600
set output '{prefix}.png'
set title 'fvp single host: IOPS per job (TCG guest; compare ratios, not absolutes)'
set style data histograms
set style histogram clustered gap 1
set style fill solid border -1
set logscale y
set ylabel 'IOPS (log)'
set key outside right
plot for [i=2:{len(DEVICES) + 1}] '{dat}' using i:xtic(1) title columnheader(i)
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        print(f"wrote {prefix}.png")
    else:
        print("gnuplot missing: no chart")


if __name__ == "__main__":
    main()
