#!/usr/bin/env python3
"""Prints the codec comparison table of docs/benchmarks.md from criterion's results.

Run after `cargo bench --bench codec` in this directory:  python3 report.py
"""
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "target", "criterion")
IMPLS = ["ours", "stun-types", "webrtc-stun", "stun_codec"]


def mean_ns(group, impl):
    # criterion writes group and function names with '/' and '+' replaced by '_'
    for g in (group, group.replace("/", "_"), group.replace("/", "_").replace("+", "_")):
        path = os.path.join(ROOT, g, impl, "new", "estimates.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)["mean"]["point_estimate"]
    return None


def fmt(ns):
    return f"{ns:,.0f} ns" if ns >= 100 else f"{ns:.1f} ns"


print("| message | operation | " + " | ".join(IMPLS) + " | ours vs fastest other |")
print("|---|---|" + "---|" * len(IMPLS) + "---|")
for msg in ["ice-check", "send-indication"]:
    for op in ["parse+read-all", "parse+verify", "build+MI+FP"]:
        times = {i: mean_ns(f"{msg}/{op}", i) for i in IMPLS}
        others = [t for i, t in times.items() if i != "ours" and t]
        ratio = min(others) / times["ours"] if times["ours"] and others else float("nan")
        cells = [fmt(times[i]) if times[i] else "n/a" for i in IMPLS]
        print(f"| {msg} | {op} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
