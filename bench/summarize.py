#!/usr/bin/env python3
"""Turns bench/compare.sh results (JSON lines) into BENCHMARKS.md: medians per
workload and target, and the ratio eventbus / JetStream for each."""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
from collections import defaultdict

TARGETS = ["jetstream", "eventbus-sync", "eventbus-buffered"]
WORKLOADS = [
    ("publish", "durable publish, events/s (eventbus: 4 PublishStreams x 100 x 1 KiB, 8 in flight; JetStream: 4 async publishers, 1000 acks outstanding)"),
    ("unary", "unary publish, 50 concurrent callers, 1 event each, events/s"),
    ("latency", "one event in flight, acknowledgement latency"),
    ("replay", "replay from the start, credit 100 / pull batch 100, events/s"),
    ("e2e", "end to end at 5,000 events/s (open loop), delivery latency"),
]


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(x, unit=""):
    if x is None:
        return "-"
    if unit == "us":
        return f"{x:,.0f} µs"
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--nats-version", default="")
    ap.add_argument("--eventbus-version", default="")
    a = ap.parse_args()
    runs = defaultdict(list)
    for line in open(a.results):
        r = json.loads(line)
        runs[r["label"]].append(r)

    def stat(workload, target, key):
        vals = []
        for r in runs.get(f"{workload}|{target}", []):
            v = r
            for k in key.split("."):
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(float(v))
        return median(vals)

    def ratio(x, y):
        return f"{x / y:.2f}" if x and y else "-"

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    out = []
    out.append("# Benchmarks: eventbus and NATS JetStream on the same machine\n")
    out.append(f"Measured {datetime.date.today()} by `bench/compare.sh` (medians of {a.reps} alternating repetitions). "
               "Every number below comes from one run of that script; rerun it to refresh this file.\n")
    out.append("## Machine and versions\n")
    out.append(f"- CPU: {cpu}, {os.cpu_count()} cores; memory {int(mem) // 1024 // 1024} GiB; {platform.system()} {platform.release()}")
    out.append(f"- {a.eventbus_version} (release build), {rustc}")
    out.append(f"- {a.nats_version} (Debian package), JetStream file storage, default settings")
    out.append("- Payloads of 1 KiB on both sides (the same Avro record bytes); counts identical per workload; all on 127.0.0.1.\n")
    out.append("**Durability is not the same.** JetStream acknowledges a publish after writing it, without fsync "
               "(its default `sync_interval` flushes every 2 minutes). eventbus `sync` acknowledges only after the "
               "write-ahead log is fsynced; eventbus `buffered` acknowledges after the write and fsyncs every 100 ms. "
               "`buffered` is the like-for-like comparison; `sync` shows the cost of the stronger promise.\n")
    out.append("## Throughput\n")
    out.append("| Workload | JetStream | eventbus sync | eventbus buffered | sync / JetStream | buffered / JetStream |")
    out.append("|---|---|---|---|---|---|")
    for w, desc in WORKLOADS:
        if w in ("latency", "e2e"):
            continue
        js, s, b = (stat(w, t, "events_per_sec") for t in TARGETS)
        out.append(f"| {desc} | {fmt(js)} | {fmt(s)} | {fmt(b)} | {ratio(s, js)} | {ratio(b, js)} |")
    out.append("\n## Latency\n")
    out.append("| Workload | Percentile | JetStream | eventbus sync | eventbus buffered | sync / JetStream | buffered / JetStream |")
    out.append("|---|---|---|---|---|---|---|")
    for w, desc in WORKLOADS:
        if w not in ("latency", "e2e"):
            continue
        for p in ("p50", "p99", "p999"):
            js, s, b = (stat(w, t, f"latency_us.{p}") for t in TARGETS)
            out.append(f"| {desc} | {p} | {fmt(js, 'us')} | {fmt(s, 'us')} | {fmt(b, 'us')} | {ratio(s, js)} | {ratio(b, js)} |")
    idle = stat("idle", "eventbus-sync", "bytes_per_idle_subscription")
    out.append("\n## Memory\n")
    out.append(f"- Idle subscriptions: {fmt(idle)} bytes of server RSS each (10,000 subscriptions, credit 1, LATEST).")
    for t in TARGETS:
        rss = stat("publish", t, "server_rss_bytes")
        cpu_s = stat("publish", t, "server_cpu_seconds")
        if rss:
            out.append(f"- {t}: server RSS after the publish run {rss / 2**20:.0f} MiB, server CPU during it {cpu_s:.1f} s.")
    out.append("\n## Commands\n")
    out.append("```sh\nbench/compare.sh            # the full run (a few minutes)\nbench/compare.sh --quick    # one repetition, a tenth of the counts\n```\n")
    out.append("Each row is `eventbus bench <workload> --json` against each target; the raw results of the last run "
               "are in `bench/last-results.jsonl`.")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
