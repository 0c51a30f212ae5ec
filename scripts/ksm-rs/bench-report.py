#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""bench-report.py OUTDIR: the `make bench` report.

Reads OUTDIR/{c,rust}-N.out (the guest's "### bench:" and "### series:"
lines), prints a table with which way is better, min/median/max per
implementation and the Rust/C ratio of the medians, writes OUTDIR/bench.json
(every key as {"c", "rust", "unit", "better", ...} holding medians; a
checked key's "check" says what it must be and "check_failed" lists the
failures) and OUTDIR/converge.svg
(pages_sharing over time on the convergence workload), and prints the JSON
file's path last. A few keys are checks rather than measures (see CHECKS):
each run that fails one is printed as "CHECK FAILED", and the exit status is
then 1.
"""

import glob
import json
import os
import re
import statistics
import sys

# key: (description, better, target Rust/C ratio or None[, target for Rust's own value])
KEYS = {
    "merge": ("ksm_tests -P 100 MiB, merge throughput", "higher", 2.0),
    "merge_thp": ("ksm_tests -H 100 MiB, merge with THP", "higher", 1.0),
    "unmerge": ("ksm_tests -D 100 MiB, unmerge throughput", "higher", 1.0),
    "cow": ("ksm_tests -C, COW of merged pages", "higher", None),
    "merge_1024m": ("ksm_tests -P 1 GiB", "higher", 2.0),
    "merge_thp_1024m": ("ksm_tests -H 1 GiB", "higher", 1.0),
    "unmerge_1024m": ("ksm_tests -D 1 GiB", "higher", 1.0),
    # merge_fresh_frame (a ksm_rs extension; mm/ksm.c has none: n/a).
    "merge_fresh_frame": ("ksm_tests -P 100 MiB with merge_fresh_frame=1 (compare: merge)",
                          "higher", None),
    "merge_pairs": ("ksm_tests -P 100 MiB, max_page_sharing=2: a new KSM page every 2 pages",
                    "higher", None),
    "merge_pairs_fresh_frame": ("the same with merge_fresh_frame=1 (compare: merge_pairs)",
                                "higher", None),
    "merge_pairs_ksmd_cpu": ("ksmd CPU during merge_pairs", "lower", None),
    "merge_pairs_fresh_frame_ksmd_cpu": ("ksmd CPU during merge_pairs_fresh_frame", "lower",
                                         None),
    "merge_thp_passes": ("8 THPs, each of 512 equal pages of its own: full scans until all "
                         "are merged", "lower", 1.0),
    "merge_thp_passes_same": ("the same, all 8 THPs of one contents", "lower", 1.0),
    "merge_thp_passes_pairs": ("8 THPs of distinct pages, each THP present twice: full scans "
                               "until all are merged", "lower", 1.0),
    "merge_default": ("merge 100 MiB at pages_to_scan=100, sleep 20 ms", "higher", None),
    "scan_cpu_per_gib": ("ksmd CPU per GiB per full scan, unique pages, smart_scan=0", "lower", 0.5),
    "scan_cpu_per_gib_smart": ("the same with smart_scan=1", "lower", 0.5),
    "scan_wall_per_gib": ("wall time per GiB per full scan, smart_scan=0", "lower", None),
    "scan_wall_per_gib_smart": ("wall time per GiB per full scan, smart_scan=1", "lower", None),
    "scan_read_passes": ("ksmd CPU per full scan / one userspace read pass", "lower", None),
    "read_cpu_per_gib": ("floor: reading 1 GiB once from userspace", "lower", None),
    "hash_cpu_per_gib": ("floor: hashing 1 GiB once (xxh64) from userspace", "lower", None),
    "converge_seconds": ("4 processes, 50 % dup, 10 % of them rewritten: time to 95 %", "lower", 1.0),
    "converge_ksmd_cpu": ("ksmd CPU to get there", "lower", None),
    "metadata_bytes_per_page": ("slab+vmalloc bytes per tracked page (end of convergence)", "lower", None,
                                48.0),
    "tracked_pages": ("tracked pages at the end of convergence", None, None),
    "qemu_pages_sharing": ("two QEMU guests inside the VM: pages_sharing", "higher", 1.0),
    "qemu_general_profit": ("two QEMU guests inside the VM: general_profit", "higher", None),
    "qemu_boot_seconds": ("two QEMU guests inside the VM: seconds until both are up", "lower",
                          None),
    "qemu_mem_merge_off_pages_sharing": ("two QEMU guests with mem-merge=off: pages_sharing "
                                         "(must be 0)", "lower", None),
    "qemu_mem_merge_off_mergeable_kb": ("two QEMU guests with mem-merge=off: size of their "
                                        "VMAs marked mergeable (must be 0)", "lower", None),
    # Worst cases: what page contents, sharers, VMAs or an address space can make it cost.
    "unshare_many_sharers": ("3 x 128 MiB in one KSM page (max_page_sharing 1000000) COW-"
                             "unshared but for one mapping: wall time of the next 2 full scans",
                             "lower", None),
    "scan_cpu_random_16k": ("ksmd CPU per full scan, 16384 random pages (reference)", "lower", None),
    "scan_cpu_collide_16k": ("the same, 16384 distinct pages of one xxh64 (seed 0)", "lower", None),
    "scan_cpu_collide_256k": ("the same, 262144 distinct pages of one xxh64 (seed 0)", "lower", None),
    "merge_collide": ("16384 pairs of colliding pages: time until all are merged", "lower", None),
    "scan_cpu_anyseed_16k": ("ksmd CPU per full scan, 16384 distinct pages of one xxh64 "
                             "for any seed", "lower", None),
    "scan_cpu_anyseed_256k": ("the same, 262144 distinct pages of one xxh64 for any seed",
                              "lower", None),
    "merge_anyseed": ("16384 pairs of pages of one xxh64 for any seed: time until all are "
                      "merged", "lower", None),
    "scan_cpu_sparse": ("ksmd CPU per full scan, 32 TiB MAP_NORESERVE with 1 page", "lower", None),
    "rmap_walk_many_vmas": ("move_pages() of a KSM page in 20000 VMAs of one anon_vma "
                            "(median of 5)", "lower", None),
    # Memory pressure that comes and goes. advisor_mode pressure is ksm_rs's only: mm/ksm.c
    # prints its pressure_* keys as "n/a", which parse() skips (C shows "-", no ratio).
    "pressure_always_on_ksmd_cpu_ms": ("pressure comes and goes (2 x 86 % of MemTotal): ksmd "
                                       "CPU with ksmd always on (advisor_mode none)", "lower",
                                       None),
    "pressure_always_on_pages_sharing": ("the same: the most pages_sharing seen", "higher",
                                         None),
    "pressure_ksmd_cpu_ms": ("the same under advisor_mode pressure (ksm_rs only)", "lower",
                             None),
    "pressure_pages_sharing": ("the same under advisor_mode pressure: the most pages_sharing "
                               "seen (ksm_rs only)", "higher", None),
    # Rust only: mm/ksm.c has no merge_now, its value is "n/a" (left out, not a failure).
    "merge_now_seconds": ("two 256 MiB processes of one contents: seconds until merged with "
                          "one merge_now each, ksmd stopped (Rust only)", "lower", None),
    "merge_now_ksmd_seconds": ("the same merged by ksmd alone, advisor_mode=scan-time and "
                               "default tunables", "lower", None),
}
REQUIRED = ["merge", "merge_thp", "merge_thp_passes", "unmerge", "cow", "scan_cpu_per_gib",
            "scan_cpu_per_gib_smart", "converge_seconds", "metadata_bytes_per_page",
            "qemu_pages_sharing"]
# Checks: key -> (what a run's value must satisfy, what that means). A run that
# ran QEMU (printed one of QEMU_KEYS, a value or "fail") must pass all of
# QEMU_KEYS: present, measured, and as stated.
CHECKS = {
    "qemu_mem_merge_off_pages_sharing": (lambda v: v == 0, "0: no merging with mem-merge=off"),
    "qemu_mem_merge_off_mergeable_kb": (lambda v: v == 0,
                                        "0: QEMU did not madvise its RAM with mem-merge=off"),
    "qemu_pages_sharing": (lambda v: v > 0, "> 0: two guests with mem-merge=on share pages"),
}
QEMU_KEYS = list(CHECKS)
# Keys that only ksm_rs can measure (its extensions): "n/a" for mm/ksm.c.
RUST_ONLY = {"merge_fresh_frame", "merge_pairs_fresh_frame", "merge_pairs_fresh_frame_ksmd_cpu"}


def parse(outdir):
    vals = {}     # (impl, key) -> [values]
    units = {}
    fails = {}    # (impl, key) -> count
    series = {}   # impl -> [[(t, v)], ...] one list per run
    runs = {}     # run (file name) -> {key: value, or None when it failed}
    for path in sorted(glob.glob(os.path.join(outdir, "*-*.out"))):
        impl = os.path.basename(path).split("-")[0]
        run = []
        keys = runs.setdefault(os.path.basename(path), {})
        with open(path, errors="replace") as f:
            for line in f:
                line = line.strip()
                m = re.match(r"### bench: (\S+) (\S+)(?: (\S+))?$", line)
                if m:
                    key, val, unit = m.groups()
                    if key in ("implementation", "kernel", "done"):
                        continue
                    if val == "fail":
                        fails[(impl, key)] = fails.get((impl, key), 0) + 1
                        keys[key] = None
                        continue
                    try:
                        vals.setdefault((impl, key), []).append(float(val))
                    except ValueError:
                        continue
                    keys[key] = float(val)
                    units[key] = unit or ""
                    continue
                m = re.match(r"### series: converge (\S+) (\S+)$", line)
                if m:
                    run.append((float(m.group(1)), float(m.group(2))))
        if run:
            series.setdefault(impl, []).append(run)
    return vals, units, fails, series, runs


def failed_checks(runs):
    """The failed checks, (key, line): every run that ran QEMU against CHECKS."""
    failed = []
    for name, keys in sorted(runs.items()):
        if not any(k in keys for k in QEMU_KEYS):
            continue
        for key in QEMU_KEYS:
            ok, want = CHECKS[key]
            if key not in keys:
                failed.append((key, f"{name}: {key} missing (QEMU ran), must be {want}"))
            elif keys[key] is None:
                failed.append((key, f"{name}: {key} failed (not measured), must be {want}"))
            elif not ok(keys[key]):
                failed.append((key, f"{name}: {key} is {fmt(keys[key])}, must be {want}"))
    return failed


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def svg_plot(series, path):
    w, h, ml, mr, mt, mb = 760, 420, 70, 20, 30, 50
    pts = [p for runs in series.values() for run in runs for p in run]
    if not pts:
        return False
    tmax = max(t for t, _ in pts) or 1
    vmax = max(v for _, v in pts) or 1
    sx = lambda t: ml + (w - ml - mr) * t / tmax
    sy = lambda v: h - mb - (h - mt - mb) * v / vmax
    colors = {"c": "#1f77b4", "rust": "#d62728"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="14">'
           'pages_sharing over time: 4 processes, 50 % duplicates, 10 % of them rewritten</text>']
    for i in range(6):
        v = vmax * i / 5
        out.append(f'<line x1="{ml}" x2="{w - mr}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ml - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        t = tmax * i / 5
        out.append(f'<text x="{sx(t):.1f}" y="{h - mb + 18}" text-anchor="middle">{t:.0f}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">seconds after run=1</text>')
    out.append(f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{h - mb}" stroke="black"/>')
    out.append(f'<line x1="{ml}" x2="{w - mr}" y1="{h - mb}" y2="{h - mb}" stroke="black"/>')
    for impl, runs in sorted(series.items()):
        for i, run in enumerate(runs):
            d = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in run)
            op = "1" if i == 0 else "0.45"
            out.append(f'<polyline fill="none" stroke="{colors.get(impl, "black")}" '
                       f'stroke-width="2" opacity="{op}" points="{d}"/>')
    for i, impl in enumerate(sorted(series)):
        y = mt + 14 + 16 * i
        out.append(f'<line x1="{ml + 12}" x2="{ml + 36}" y1="{y - 4}" y2="{y - 4}" '
                   f'stroke="{colors.get(impl, "black")}" stroke-width="3"/>')
        name = "mm/ksm.c" if impl == "c" else "mm/ksm_rs"
        out.append(f'<text x="{ml + 42}" y="{y}">{name} ({len(series[impl])} runs)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def main():
    outdir = sys.argv[1]
    vals, units, fails, series, runs = parse(outdir)
    checks = failed_checks(runs)
    keys = [k for k in KEYS if any((i, k) in vals or (i, k) in fails for i in ("c", "rust"))]
    keys += sorted({k for _, k in vals} - set(keys))
    result = {}
    rows = []
    for key in keys:
        desc, better, target, *absolute = KEYS.get(key, (key, None, None))
        absolute = absolute[0] if absolute else None
        entry = {"unit": units.get(key, ""), "better": better, "description": desc}
        cells = []
        for impl in ("c", "rust"):
            v = vals.get((impl, key), [])
            med = statistics.median(v) if v else None
            entry[impl] = med
            entry[impl + "_min"] = min(v) if v else None
            entry[impl + "_max"] = max(v) if v else None
            entry[impl + "_runs"] = len(v)
            entry[impl + "_failed"] = fails.get((impl, key), 0)
            if impl == "c" and key in RUST_ONLY and not v and (impl, key) not in fails:
                cells.append("n/a")
                continue
            cells.append(f"{fmt(min(v) if v else None)}/{fmt(med)}/{fmt(max(v) if v else None)}"
                         + (f" ({fails[(impl, key)]} failed)" if (impl, key) in fails else ""))
        ratio = None
        if entry["c"] and entry["rust"] is not None:
            ratio = entry["rust"] / entry["c"]
        entry["ratio"] = ratio
        met = None
        if target is not None and ratio is not None:
            met = ratio >= target if better == "higher" else ratio <= target
            entry["target"] = target
            entry["target_met"] = met
        if absolute is not None and entry["rust"] is not None:
            # A target for Rust's own value, not for the ratio.
            met = entry["rust"] >= absolute if better == "higher" else entry["rust"] <= absolute
            entry["target_value"] = absolute
            entry["target_met"] = met
        result[key] = entry
        if absolute is not None:
            goal = f"{'>=' if better == 'higher' else '<='}{absolute:g} {entry['unit']} "
        elif target is not None:
            goal = f"{'>=' if better == 'higher' else '<='}{target:g} "
        else:
            goal = None
        shown = "-" if goal is None else goal + ("yes" if met else "NO" if met is not None else "?")
        if key in CHECKS:
            # Every run checked, besides any target for the ratio.
            check = "check " + ("NO" if any(k == key for k, _ in checks) else "yes")
            shown = check if goal is None else f"{shown}, {check}"
        rows.append((key, entry["unit"], better or "-", cells[0], cells[1], fmt(ratio), shown))
    for key in REQUIRED:
        result.setdefault(key, {"c": None, "rust": None, "unit": "", "better": KEYS[key][1],
                                "description": KEYS[key][0], "missing": True})
    hdr = ("key", "unit", "better", "C min/median/max", "Rust min/median/max", "Rust/C", "target")
    widths = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    line = "  ".join(h.ljust(w) for h, w in zip(hdr, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    missing = [k for k in REQUIRED if result[k].get("missing")]
    if missing:
        print("not measured:", ", ".join(missing))
    for key, (_, want) in CHECKS.items():
        failed = [c for k, c in checks if k == key]
        if key not in result and not failed:
            continue
        entry = result.setdefault(key, {"c": None, "rust": None, "unit": "",
                                        "better": KEYS[key][1], "description": KEYS[key][0],
                                        "missing": True})
        entry["check"] = want
        entry["check_failed"] = failed
    for _, c in checks:
        print("CHECK FAILED:", c)
    plot = os.path.join(outdir, "converge.svg")
    if svg_plot(series, plot):
        print("plot:", plot)
    path = os.path.join(outdir, "bench.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(path)
    return 1 if checks else 0


if __name__ == "__main__":
    sys.exit(main())
