#!/usr/bin/env python3
"""Turns bench/compare.sh results (JSON lines) into BENCHMARKS.md: medians per
workload and target, the ratio eventbus / JetStream for each, the gRPC ceiling
(a bare tonic server of the same service, `eventbus bench-echo`), fan-out, and
the targets of issues 4 and 26.

It rewrites only the part of BENCHMARKS.md above bench/mdsections.py's
marker line and keeps every section below it (channels, console, scale table:
each written by its own script)."""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mdsections  # noqa: E402  (the scripts' shared layout of BENCHMARKS.md)

TARGETS = ["jetstream", "eventbus-sync", "eventbus-buffered", "eventbus-jetstream"]
# The gRPC ceiling: `eventbus bench-echo`, loaded by the same generator.
ECHO = "echo"
EVENTBUS = ["eventbus-sync", "eventbus-buffered", "eventbus-jetstream"]
# The sections summarize.py writes (all above the marker).
GENERATED = {"Machine and versions", "Throughput", "Latency", "gRPC ceiling", "Fan-out", "Memory",
             "CPU per event", "Targets (issue 26)", "Targets (issue 4)", "Commands"}
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
               "`buffered` is the like-for-like comparison; `sync` shows the cost of the stronger promise. "
               "eventbus `jetstream` is eventbus on its JetStream backend against the same nats-server (one replica): "
               "beside raw JetStream it shows what the Pub/Sub API layer costs.\n")
    out.append("## Throughput\n")
    out.append("| Workload | JetStream | eventbus sync | eventbus buffered | eventbus on JetStream | sync / JetStream | buffered / JetStream | on JetStream / JetStream |")
    out.append("|---|---|---|---|---|---|---|---|")
    for w, desc in WORKLOADS:
        if w in ("latency", "e2e"):
            continue
        js, s, b, ej = (stat(w, t, "events_per_sec") for t in TARGETS)
        out.append(f"| {desc} | {fmt(js)} | {fmt(s)} | {fmt(b)} | {fmt(ej)} | {ratio(s, js)} | {ratio(b, js)} | {ratio(ej, js)} |")
    out.append("\n## Latency\n")
    out.append("| Workload | Percentile | JetStream | eventbus sync | eventbus buffered | eventbus on JetStream | sync / JetStream | buffered / JetStream | on JetStream / JetStream |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for w, desc in WORKLOADS:
        if w not in ("latency", "e2e"):
            continue
        for p in ("p50", "p99", "p999"):
            js, s, b, ej = (stat(w, t, f"latency_us.{p}") for t in TARGETS)
            out.append(f"| {desc} | {p} | {fmt(js, 'us')} | {fmt(s, 'us')} | {fmt(b, 'us')} | {fmt(ej, 'us')} | {ratio(s, js)} | {ratio(b, js)} | {ratio(ej, js)} |")
    out.append("\n## gRPC ceiling\n")
    out.append("`eventbus bench-echo` is a bare tonic server of the same `eventbus.v1.PubSub` service (tonic's default "
               "server settings with the real server's HTTP/2 windows; no auth, storage, metrics or per-call tracing): "
               "Publish answers one result per event, Subscribe streams back what was published from memory as credit "
               "arrives. The same load generator drives it with the same workloads (`bench --target echo`), so it is "
               "the ceiling of tonic + prost + HTTP/2 + this load generator on this machine.\n")
    out.append("| Workload | echo (ceiling) | eventbus sync | eventbus buffered | eventbus on JetStream | sync / ceiling | buffered / ceiling | on JetStream / ceiling |")
    out.append("|---|---|---|---|---|---|---|---|")
    for w, desc in WORKLOADS:
        if w in ("latency", "e2e"):
            continue
        e = stat(w, ECHO, "events_per_sec")
        s, b, ej = (stat(w, t, "events_per_sec") for t in EVENTBUS)
        out.append(f"| {desc} | {fmt(e)} | {fmt(s)} | {fmt(b)} | {fmt(ej)} | {ratio(s, e)} | {ratio(b, e)} | {ratio(ej, e)} |")
    for p in ("p50", "p99"):
        e = stat("latency", ECHO, f"latency_us.{p}")
        s, b, ej = (stat("latency", t, f"latency_us.{p}") for t in EVENTBUS)
        out.append(f"| one event in flight, acknowledgement latency {p} | {fmt(e, 'us')} | {fmt(s, 'us')} | {fmt(b, 'us')} | "
                   f"{fmt(ej, 'us')} | {ratio(s, e)} | {ratio(b, e)} | {ratio(ej, e)} |")

    fan = sorted({int(l.split("|")[0].split("-")[1]) for l in runs if l.startswith("fanout-")})
    out.append("\n## Fan-out\n")
    if fan:
        rate = stat(f"fanout-{fan[0]}", "jetstream", "rate") or stat(f"fanout-{fan[0]}", "eventbus-buffered", "rate")
        out.append(f"One topic, {' / '.join(str(k) for k in fan)} subscribers reading live (LATEST; JetStream: a pull "
                   f"consumer each, batches of 100), each on its own connection, while one publisher sends "
                   f"{fmt(rate)} events/s (open loop, one event per request). Delivered events/s counts every event "
                   "each subscriber received, from the first publish to the last delivery (expected: rate x "
                   "subscribers); latency is publish to delivery over all subscribers. Server CPU per delivery is "
                   "the server's CPU time over the deliveries, publishing included (one request per event), so "
                   "with one subscriber it is mostly the cost of a publish.\n")
        out.append("| Subscribers | Target | delivered events/s | expected | p50 | p99 | server µs/delivery |")
        out.append("|---|---|---|---|---|---|---|")
        for k in fan:
            for t in TARGETS:
                w = f"fanout-{k}"
                d = stat(w, t, "delivered_events_per_sec") or stat(w, t, "events_per_sec")
                if d is None:
                    continue
                exp = stat(w, t, "expected_events_per_sec")
                n, srv = stat(w, t, "events"), stat(w, t, "server_cpu_seconds")
                per = f"{srv / n * 1e6:.1f}" if n and srv is not None else "-"
                out.append(f"| {k} | {t} | {fmt(d)} | {fmt(exp)} | {fmt(stat(w, t, 'latency_us.p50'), 'us')} | "
                           f"{fmt(stat(w, t, 'latency_us.p99'), 'us')} | {per} |")
    else:
        out.append("No fan-out runs in these results.")

    idle = stat("idle", "eventbus-sync", "bytes_per_idle_subscription")
    out.append("\n## Memory\n")
    out.append(f"- Idle subscriptions: {fmt(idle)} bytes of server RSS each (10,000 subscriptions, credit 1, LATEST).")
    for t in TARGETS:
        rss = stat("publish", t, "server_rss_bytes")
        cpu_s = stat("publish", t, "server_cpu_seconds")
        if rss:
            out.append(f"- {t}: server RSS after the publish run {rss / 2**20:.0f} MiB, server CPU during it {cpu_s:.1f} s.")
    out.append("\n## CPU per event\n")
    out.append("Server and load-generator CPU time divided by the events of the run (both processes share the same 2 cores, "
               "so the sum bounds the throughput: 2 cores / (server + client) µs per event).\n")
    out.append("| Workload | Target | server µs/event | load generator µs/event | bound, events/s |")
    out.append("|---|---|---|---|---|")
    for w, _ in WORKLOADS:
        if w in ("latency", "e2e"):
            continue
        for t in TARGETS + [ECHO]:
            n = stat(w, t, "events")
            srv, cli = stat(w, t, "server_cpu_seconds"), stat(w, t, "client_cpu_seconds")
            if not n or srv is None or cli is None:
                continue
            s_us, c_us = srv / n * 1e6, cli / n * 1e6
            bound = 2e6 / (s_us + c_us) if s_us + c_us else None
            out.append(f"| {w} | {t} | {s_us:.1f} | {c_us:.1f} | {fmt(bound)} |")
    fs = runs.get("fsync|disk", [])
    if fs:
        f = fs[-1]["fdatasync_us"]
        out.append(f"\nThis disk's fdatasync of an appended 1.1 KiB record (`bench/fsync_latency.py`, {fs[-1]['count']} samples): "
                   f"p50 {f['p50']} µs, p99 {f['p99']} µs, p99.9 {f['p999']} µs, max {f['max']} µs. "
                   "Every `sync` acknowledgement waits for at least one of these.")

    def target(name, value, ok, shown):
        out.append(f"| {name} | {shown if value is not None else '-'} | {'yes' if value is not None and ok else 'no'} |")

    def r(w, t, key="events_per_sec", base="jetstream"):
        a, b = stat(w, t, key), stat(w, base, key)
        return a / b if a and b else None

    def at_least(name, x, bound):
        target(name, x, x is not None and x >= bound, f"{x:.2f} x" if x else "")

    def at_most(name, x, bound):
        target(name, x, x is not None and x <= bound, f"{x:.2f} x" if x else "")

    out.append("\n## Targets (issue 26)\n")
    out.append("Ratios from this run; \"ceiling\" is the tonic echo server above.\n")
    out.append("| Target | Measured | Met |")
    out.append("|---|---|---|")
    rows = [w for w in ("publish", "unary", "latency", "replay") if stat(w, ECHO, "events_per_sec")]
    target("gRPC ceiling rows (tonic echo, same payloads and load generator) present", rows or None, bool(rows),
           ", ".join(rows))
    at_least("unary Publish, 50 callers, sync >= 0.8 x the ceiling", r("unary", "eventbus-sync", base=ECHO), 0.8)
    at_least("unary Publish, 50 callers, buffered >= 0.9 x the ceiling", r("unary", "eventbus-buffered", base=ECHO), 0.9)
    at_most("one publish in flight, p50, buffered <= 1.3 x the echo round trip",
            r("latency", "eventbus-buffered", "latency_us.p50", base=ECHO), 1.3)
    for t in ("eventbus-buffered", "eventbus-sync"):
        n, srv = stat("replay", t, "events"), stat("replay", t, "server_cpu_seconds")
        x = srv / n * 1e6 if n and srv is not None else None
        target(f"replay, server CPU per event <= 3 µs ({t.split('-')[1]})", x, x is not None and x <= 3,
               f"{x:.1f} µs" if x is not None else "")
    at_least("replay (buffered) >= 1.5 x JetStream pull", r("replay", "eventbus-buffered"), 1.5)
    at_most("end to end p50 at 5,000/s, buffered <= 1.0 x JetStream", r("e2e", "eventbus-buffered", "latency_us.p50"), 1.0)
    at_most("end to end p50 at 5,000/s, sync <= 2.0 x JetStream", r("e2e", "eventbus-sync", "latency_us.p50"), 2.0)
    at_least("JetStream backend: durable publish >= 0.8 x raw JetStream", r("publish", "eventbus-jetstream"), 0.8)
    at_least("JetStream backend: replay >= 0.7 x raw JetStream", r("replay", "eventbus-jetstream"), 0.7)
    at_least("JetStream backend: unary >= 0.8 x eventbus buffered unary",
             r("unary", "eventbus-jetstream", base="eventbus-buffered"), 0.8)
    target("fan-out, one topic, 1 / 10 / 100 subscribers, delivered events/s and p99 in the table",
           fan or None, fan == [1, 10, 100], " / ".join(str(k) for k in fan))

    out.append("\n## Targets (issue 4)\n")
    out.append("| Target | Measured | Met |")
    out.append("|---|---|---|")

    x = r("publish", "eventbus-sync")
    target("durable publish (sync) >= 1.0 x JetStream", x, x is not None and x >= 1.0, f"{x:.2f} x" if x else "")
    x = r("publish", "eventbus-buffered")
    target("buffered publish >= 1.5 x JetStream", x, x is not None and x >= 1.5, f"{x:.2f} x" if x else "")
    x = r("replay", "eventbus-sync")
    target("replay from EARLIEST >= 1.0 x JetStream", x, x is not None and x >= 1.0, f"{x:.2f} x" if x else "")
    x = r("e2e", "eventbus-sync", "latency_us.p99")
    target("end to end p99 at 5,000/s (sync) <= 0.5 x JetStream", x, x is not None and x <= 0.5, f"{x:.2f} x" if x else "")
    x = r("e2e", "eventbus-buffered", "latency_us.p99")
    target("(same, buffered) <= 0.5 x JetStream", x, x is not None and x <= 0.5, f"{x:.2f} x" if x else "")
    x = stat("e2e", "eventbus-sync", "latency_us.p50")
    target("end to end p50 at 5,000/s with sync <= 300 µs", x, x is not None and x <= 300, fmt(x, "us"))
    x = stat("unary", "eventbus-sync", "events_per_sec")
    target("unary Publish, 50 callers, durable >= 30,000 events/s", x, x is not None and x >= 30000, fmt(x))
    x = idle
    target("idle subscription <= 16 KiB", x, x is not None and x <= 16384, f"{fmt(x)} bytes" if x else "")
    out.append("\nWhy the unmet ones are unmet, with the profiles: [bench/PROFILE.md](bench/PROFILE.md).")

    out.append("\n## Commands\n")
    out.append("```sh\nbench/compare.sh            # the full run (a few minutes)\nbench/compare.sh --quick    # one repetition, a tenth of the counts\n```\n")
    out.append("Each row is `eventbus bench <workload> --json` against each target; the raw results of the last run "
               "are in `bench/last-results.jsonl`. The sections below are written by their own scripts.")
    try:
        with open(a.out) as f:
            kept = mdsections.kept_sections(f.read(), GENERATED)
    except FileNotFoundError:
        kept = ""
    with open(a.out, "w") as f:
        f.write(mdsections.join("\n".join(out), kept))


if __name__ == "__main__":
    main()
