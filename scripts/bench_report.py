#!/usr/bin/env python3
"""Turns the benchmark guest's fio JSON files into a table, a JSON summary and a chart.

Usage: bench_report.py RESULTS_DIR OUTPUT_PREFIX
Ratios compare each fvp row with dm-linear over brd (the floor any dm target pays),
with brd (the RAM limit) and with dm-cache (the peer), job by job.
"""
import json
import os
import shutil
import subprocess
import sys

DEVICES = ["backing", "brd", "dm-linear", "fvp-wt", "fvp-wb", "fvp-flash", "dm-cache", "dm-writecache"]
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


def main():
    results, prefix = sys.argv[1], sys.argv[2]
    table = {d: {j: load(results, d, j) for j in JOBS} for d in DEVICES}
    summary = {"devices": table, "ratios": {}}
    print(f"{'job':<15} {'device':<14} {'IOPS':>9} {'p50 us':>9} {'p99 us':>9}"
          f" {'IOPS/lin':>9} {'p50/lin':>8} {'IOPS/brd':>9} {'IOPS/dmc':>9} {'IOPS/dmwc':>9}")
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
                }
                summary["ratios"].setdefault(dev, {})[job] = rs
                extra = (f" {fmt_ratio(rs['iops_vs_dm_linear']):>9} {fmt_ratio(rs['p50_vs_dm_linear']):>8}"
                         f" {fmt_ratio(rs['iops_vs_brd']):>9} {fmt_ratio(rs['iops_vs_dm_cache']):>9}"
                         f" {fmt_ratio(rs['iops_vs_dm_writecache']):>9}")
            print(f"{job:<15} {dev:<14} {r['iops']:>9.0f} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f}{extra}")
        print()
    try:
        with open(os.path.join(results, "fvp-flash-reopen.json")) as f:
            reopen = json.load(f)
        summary["flash_reopen"] = reopen
        print(f"flash pool reopened with {reopen['cached_blocks']} cached blocks ({reopen['dirty_blocks']} dirty) "
              f"of {reopen['slots']} in {reopen['open_us'] / 1000:.0f} ms")
    except (OSError, ValueError, KeyError):
        pass
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
