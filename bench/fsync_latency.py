#!/usr/bin/env python3
"""Measures this disk's fdatasync latency for small appended records.

The floor under every `durability = sync` acknowledgement: one WAL append plus
one fdatasync. Prints one JSON line (microseconds) for bench/summarize.py.

Usage: bench/fsync_latency.py DIR [COUNT]
"""
import json
import os
import sys
import tempfile
import time


def main():
    folder = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    fd, path = tempfile.mkstemp(dir=folder, prefix="fsync-probe-")
    record = os.urandom(1100)  # a 1 KiB event plus its WAL framing
    samples = []
    try:
        for _ in range(count):
            os.write(fd, record)
            start = time.perf_counter_ns()
            os.fdatasync(fd)
            samples.append((time.perf_counter_ns() - start) / 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()

    def q(x):
        return round(samples[min(len(samples) - 1, int(x * len(samples)))])

    print(json.dumps({
        "label": "fsync|disk",
        "count": count,
        "fdatasync_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
                         "max": round(samples[-1]), "mean": round(sum(samples) / count)},
    }))


if __name__ == "__main__":
    main()
