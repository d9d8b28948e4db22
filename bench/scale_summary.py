#!/usr/bin/env python3
"""Turns bench/scale.sh results (JSON lines, each with a "label" of the
form "<measurement>|<size>") into the "Scale table" section of
BENCHMARKS.md. The section sits between the markers below; only the text
between them is replaced (both are appended at the end when absent), so
other scripts' sections stay as they are.

Usage: scale_summary.py RESULTS BENCHMARKS.md [NOTES.md]
(NOTES.md: the paragraphs under the table, written by people from a run.)
"""
import json
import os
import statistics
import sys

BEGIN = "<!-- scale-table:begin -->"
END = "<!-- scale-table:end -->"


def splice(text, section):
    """text with the part between BEGIN and END replaced by section (the
    markers kept); both markers and section appended when either is absent."""
    body = f"{BEGIN}\n{section.strip()}\n{END}"
    start = text.find(BEGIN)
    end = text.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start < 0 or end < 0:
        sep = "" if text.endswith("\n\n") or not text else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{sep}{body}\n"
    return text[:start] + body + text[end + len(END):]


def load(lines):
    """{label: [record, ...]} of JSON lines (blank lines skipped)."""
    out = {}
    for line in lines:
        line = line.strip()
        if line:
            r = json.loads(line)
            out.setdefault(r["label"], []).append(r)
    return out


def get(results, label, key):
    """The value at a dotted key: the median over the label's records when
    every one is a number (repeated measurements), else the last record's;
    None when absent."""
    values = []
    for v in results.get(label) or []:
        for k in key.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        values.append(v)
    if not values:
        return None
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return statistics.median(values)
    return values[-1]


def count(n):
    """1 M, 10 M, 1,000, 100,000: sizes as people say them."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000} M"
    return f"{n:,}"


def rate(x):
    return "-" if x is None else f"{x:,.0f}/s"


def mib(b):
    return "-" if b is None else f"{b / (1 << 20):,.1f} MiB"


def gib(b):
    return "-" if b is None else f"{b / (1 << 30):,.2f} GiB"


def secs(s):
    if s is None:
        return "-"
    if s < 1:
        return f"{s * 1000:,.0f} ms"
    return f"{s:,.1f} s"


def us(x):
    if x is None:
        return "-"
    if x >= 10_000:
        return f"{x / 1000:,.1f} ms"
    return f"{x:,.0f} µs"


def row(name, cells):
    """A table line: the row's name, the figure, three sizes (blank when
    fewer were measured)."""
    cells = list(cells) + [""] * (4 - len(cells))
    return "| " + " | ".join([name] + cells) + " |"


def sizes_of(results, prefix):
    """The sizes measured for a label prefix, ascending."""
    found = set()
    for label in results:
        m, _, size = label.partition("|")
        if m == prefix and size.isdigit():
            found.add(int(size))
    return sorted(found)


def table(results, meta):
    """The markdown table and the notes that depend on measured numbers."""
    lines = ["| row | figure | small | medium | large |", "|---|---|---|---|---|"]

    topics = sizes_of(results, "topics")
    t = lambda m, k, f: [f(get(results, f"{m}|{n}", k)) for n in topics]  # noqa: E731
    if topics:
        head = f"topics ({' / '.join(count(n) for n in topics)})"
        lines += [
            row(head, ["unary Publish round robin over the topics"] + t("topics", "events_per_sec", rate)),
            row("", ["publish p99 (one call)"] + t("topics", "latency_us.p99", us)),
            row("", ["server RSS after creating and publishing"] + t("topics", "server_rss_bytes", mib)),
            row("", ["startup: exec to first answer, topics on disk"] + t("topics-ready", "seconds_to_ready", secs)),
            row("", ["server RSS after that startup"] + t("topics-ready", "server_rss_bytes", mib)),
            row("", ["creating them (CreateTopic, 32 in flight)"] + t("topics", "create_seconds", secs)),
        ]

    subs = sizes_of(results, "subscribers")
    s = lambda k, f: [f(get(results, f"subscribers|{n}", k)) for n in subs]  # noqa: E731
    if subs:
        active = get(results, f"subscribers|{subs[0]}", "subscribers") or 10
        r = get(results, f"subscribers|{subs[0]}", "rate") or 0
        head = f"subscribers on one topic ({' / '.join(count(n) for n in subs)} idle + {active} active)"
        grown = []
        for n in subs:
            a = get(results, f"subscribers|{n}", "server_rss_before_idle_bytes")
            b = get(results, f"subscribers|{n}", "server_rss_with_idle_bytes")
            grown.append("-" if a is None or b is None else f"{(b - a) / 1024:,.0f} KiB")
        lines += [
            row(head, ["server RSS with the idle ones open"] + s("server_rss_with_idle_bytes", mib)),
            row("", ["RSS the idle ones added"] + grown),
            row("", [f"delivery p50 of the active ones at {r:,}/s"] + s("latency_us.p50", us)),
            row("", [f"delivery p99 of the active ones at {r:,}/s"] + s("latency_us.p99", us)),
            row("", ["server RSS after the run"] + s("server_rss_bytes", mib)),
        ]

    logs = sizes_of(results, "log-fill")
    big = meta.get("log_sizes_missing") or []
    # Sizes left out get a column only while fewer than three were run;
    # the arithmetic under the table covers them either way.
    cols = logs + big[: max(0, 3 - len(logs))]
    def lg(m, k, f):
        return [f(get(results, f"{m}|{n}", k)) if n in logs else "does not fit (below)" for n in cols]
    if cols:
        head = f"log size ({' / '.join(count(n) for n in cols)} events of 1 KiB)"
        replay_n = get(results, f"log-replay-start|{logs[0]}", "events") if logs else None
        lines += [
            row(head, ["publish while filling (PublishStream)"] + lg("log-fill", "events_per_sec", rate)),
            row("", ["disk used after filling"] + lg("log-disk", "bytes", gib)),
            row("", [f"replay from the start ({count(replay_n or 0)} events)"] + lg("log-replay-start", "events_per_sec", rate)),
            row("", ["replay from the middle (CUSTOM)"] + lg("log-replay-middle", "events_per_sec", rate)),
            row("", ["replay of the end (CUSTOM)"] + lg("log-replay-end", "events_per_sec", rate)),
            row("", ["time to first event, CUSTOM in the middle"] + lg("log-replay-middle", "first_event_us", us)),
            row("", ["time to first event, EARLIEST"] + lg("log-replay-start", "first_event_us", us)),
        ]
        lines += [
            row("retention: expire the whole log", ["time (ExpireEvents, one call)"] + lg("retention", "seconds", secs)),
            row("", ["server read_bytes / write_bytes during it"]
                + [f"{mib(get(results, f'retention|{n}', 'read_bytes'))} / {mib(get(results, f'retention|{n}', 'write_bytes'))}"
                   if n in logs else "does not fit (below)" for n in cols]),
            row("", ["server rchar (reads incl. page cache)"] + lg("retention", "rchar", gib)),
            row("", ["publish p99 beside it (1 in flight, 1,000/s)"] + lg("retention-probe-during", "latency_us.p99", us)),
            row("", ["publish p99 before it (same probe)"] + lg("retention-probe-idle", "latency_us.p99", us)),
            row("restart with the log", ["SIGTERM: time to exit"] + lg("restart-term", "stop_seconds", secs)),
            row("", ["after SIGTERM: exec to first answer"] + lg("restart-term", "seconds_to_ready", secs)),
            row("", ["after SIGKILL (right after filling): exec to first answer"] + lg("restart-kill", "seconds_to_ready", secs)),
        ]
    return "\n".join(lines)


def does_not_fit(results, meta):
    """The arithmetic for log sizes left out, from the largest one run."""
    big = meta.get("log_sizes_missing") or []
    logs = sizes_of(results, "log-fill")
    if not big or not logs:
        return ""
    n = logs[-1]
    used = get(results, f"log-disk|{n}", "bytes")
    free = meta.get("disk_free_bytes")
    keep = meta.get("disk_keep_bytes")
    fill = get(results, f"log-fill|{n}", "events_per_sec")
    parts = []
    for m in big:
        raw = m * 1024
        s = (f"{count(m)} events of 1 KiB are {raw / 1e9:,.1f} GB of payload alone; this disk had "
             f"{gib(free)} free at the start and {gib(keep)} must stay free, so at most "
             f"{gib((free or 0) - (keep or 0))} was ours.")
        if used:
            per = used / n
            s += (f" The bench payload (an Avro record padded with one repeated character) compresses"
                  f" well under LZ4: the {count(n)} log took {per:,.0f} bytes per event on disk, so"
                  f" {count(m)} would need about {gib(per * m)} plus compaction headroom; payloads that do"
                  f" not compress need the full {raw / 1e9:,.0f} GB.")
        if fill:
            s += f" Filling it at the {count(n)} rate ({fill:,.0f}/s) would take {m / fill / 60:,.0f} minutes, past this script's budget."
        parts.append(s)
    return " ".join(parts)


def section(results, meta):
    busy = meta.get("busy_note", "")
    return f"""## Scale table

Measured {meta.get('date', '?')} by `bench/scale.sh` (one run{', --quick' if meta.get('quick') else ''}; times to serve after a clean
stop are medians of {meta.get('restarts', 1)} restarts): how cost grows with the work. Release build, RocksDB backend, durability `buffered` (acknowledged after the write,
fsync every 100 ms: the logs are filled fast), `--auth none`, events of 1 KiB, everything on
127.0.0.1. {busy} Raw results: `bench/scale-results.jsonl`.

{table(results, meta)}

{does_not_fit(results, meta)}

{meta.get('notes', '').strip()}
"""


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    with open(argv[1]) as f:
        results = load(f)
    meta = get(results, "meta", "meta") or {}
    if len(argv) == 4 and os.path.exists(argv[3]):
        with open(argv[3]) as f:
            meta["notes"] = f.read()
    with open(argv[2]) as f:
        text = f.read()
    out = splice(text, section(results, meta))
    with open(argv[2], "w") as f:
        f.write(out)
    print(table(results, meta))


if __name__ == "__main__":
    main(sys.argv)
