#!/usr/bin/env python3
# Per-kernel totals of profiled steps from ncu's --csv log (one row per kernel and
# metric, gpu__time_duration.sum). A step starts at its embedding kernel, so several
# profiled steps in one log come out as separate tables, labelled in order from argv.
# Usage: kernel_summary.py FILE [label ...]
import csv, re, sys
from collections import defaultdict

path, labels = sys.argv[1], sys.argv[2:]
try:
    lines = open(path, errors="replace").read().splitlines()
except OSError as e:
    sys.exit(f"no profile: {e}")
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    sys.exit("no CSV header in " + path + "\n" + "\n".join(lines[-20:]))
steps = []
dram = defaultdict(list)  # kernel -> DRAM throughput % of peak, where profiled (PROFILE_DRAM=1)
last_id = None
for row in csv.DictReader(lines[start:]):
    metric = row.get("Metric Name")
    if metric not in ("gpu__time_duration.sum", "dram__throughput.avg.pct_of_peak_sustained_elapsed"):
        continue
    name = row["Kernel Name"]
    if any(t in name for t in ("gemv", "nvjet", "mma_kernel", "combine", "attention", "merge")) or "gemm" in name.lower():
        name = re.sub(r"\(.*", "", name) + " grid " + row.get("Grid Size", "?")
    v = float(row["Metric Value"].replace(",", ""))
    if row["ID"] != last_id:  # a kernel's first metric row: a new step starts at its embedding
        last_id = row["ID"]
        if "embedding_kernel" in name or not steps:
            steps.append([])
    if metric.startswith("dram"):
        dram[(len(steps) - 1, name)].append(v)
        continue
    unit = row.get("Metric Unit", "ns")
    v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1, "usecond": 1, "ms": 1e3, "msecond": 1e3}.get(unit, 1e-3)
    steps[-1].append((name, v))

def short(n):
    # The grid, where it was kept, tells launches of one kernel apart (gate/up from down).
    head, sep, grid = n.partition(" grid ")
    return re.sub(r"\(.*", "", head)[:90] + (sep + grid if sep else "")

for i, ks in enumerate(steps):
    tot, cnt = defaultdict(float), defaultdict(int)
    for n, v in ks:
        tot[n] += v
        cnt[n] += 1
    all_us = sum(tot.values())
    label = labels[i] if i < len(labels) else f"step {i}"
    print(f"== {label}: {len(ks)} kernels, sum of kernel times {all_us/1e3:.3f} ms")
    print(f"{'us total':>10} {'%':>5} {'calls':>6} {'us/call':>9} {'DRAM %':>7}  kernel")
    for name, v in sorted(tot.items(), key=lambda kv: -kv[1])[:25]:
        d = dram.get((i, name))
        dcol = f"{sum(d) / len(d):7.1f}" if d else f"{'-':>7}"
        print(f"{v:10.1f} {100*v/all_us:5.1f} {cnt[name]:6d} {v/cnt[name]:9.2f} {dcol}  {short(name)}")
