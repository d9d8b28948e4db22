#!/usr/bin/env python3
"""Unit tests of bench/scale_summary.py: the section splice that leaves
every other part of BENCHMARKS.md alone, and the table built from labelled
results. Run: python3 -m unittest discover -s bench -p 'test_*.py'"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale_summary as s  # noqa: E402


def results(*records):
    return s.load(json.dumps(r) for r in records)


class Splice(unittest.TestCase):
    def test_appends_both_markers_when_absent(self):
        out = s.splice("# Benchmarks\n\n## Throughput\n", "## Scale table\nx")
        self.assertEqual(
            out,
            "# Benchmarks\n\n## Throughput\n\n" + s.BEGIN + "\n## Scale table\nx\n" + s.END + "\n",
        )

    def test_replaces_only_between_the_markers(self):
        text = "head\n" + s.BEGIN + "\nold\n" + s.END + "\n## Commands\ntail\n"
        out = s.splice(text, "new")
        self.assertEqual(out, "head\n" + s.BEGIN + "\nnew\n" + s.END + "\n## Commands\ntail\n")

    def test_is_idempotent(self):
        once = s.splice("head\n", "body")
        self.assertEqual(s.splice(once, "body"), once)
        self.assertEqual(once.count(s.BEGIN), 1)

    def test_a_lone_begin_marker_gets_a_whole_new_section(self):
        out = s.splice("head\n" + s.BEGIN + "\n", "body")
        self.assertTrue(out.endswith(s.BEGIN + "\nbody\n" + s.END + "\n"))

    def test_empty_file(self):
        self.assertEqual(s.splice("", "b"), s.BEGIN + "\nb\n" + s.END + "\n")


class Formatting(unittest.TestCase):
    def test_sizes_and_units(self):
        self.assertEqual(s.count(1), "1")
        self.assertEqual(s.count(100_000), "100,000")
        self.assertEqual(s.count(10_000_000), "10 M")
        self.assertEqual(s.rate(123456.7), "123,457/s")
        self.assertEqual(s.mib(3 << 20), "3.0 MiB")
        self.assertEqual(s.secs(0.0123), "12 ms")
        self.assertEqual(s.secs(12.34), "12.3 s")
        self.assertEqual(s.us(850), "850 µs")
        self.assertEqual(s.us(12_345), "12.3 ms")
        self.assertEqual(s.rate(None), "-")

    def test_get_reads_dotted_keys_as_the_median_of_repeated_records(self):
        r = results(
            {"label": "a|1", "latency_us": {"p99": 5}, "from": "x"},
            {"label": "a|1", "latency_us": {"p99": 9}, "from": "y"},
            {"label": "a|1", "latency_us": {"p99": 7}, "from": "z"},
            {"label": "b|1", "v": 1.0},
            {"label": "b|1", "v": 2.0},
        )
        self.assertEqual(s.get(r, "a|1", "latency_us.p99"), 7)
        self.assertEqual(s.get(r, "b|1", "v"), 1.5)
        # Not numbers: the last record's.
        self.assertEqual(s.get(r, "a|1", "from"), "z")
        self.assertIsNone(s.get(r, "a|1", "latency_us.p50"))
        self.assertIsNone(s.get(r, "c|1", "x"))

    def test_sizes_of_sorts_numerically(self):
        r = results({"label": "topics|100000"}, {"label": "topics|1"}, {"label": "topics|1000"},
                    {"label": "topics-ready|5"}, {"label": "meta"})
        self.assertEqual(s.sizes_of(r, "topics"), [1, 1000, 100000])


class Table(unittest.TestCase):
    def sample(self):
        return results(
            {"label": "topics|1", "events_per_sec": 30000, "server_rss_bytes": 50 << 20,
             "latency_us": {"p99": 900}, "create_seconds": 0.01},
            {"label": "topics|1000", "events_per_sec": 20000, "server_rss_bytes": 60 << 20,
             "latency_us": {"p99": 1200}, "create_seconds": 2.0},
            {"label": "topics-ready|1", "seconds_to_ready": 0.05, "server_rss_bytes": 20 << 20},
            {"label": "log-fill|1000000", "events_per_sec": 150000},
            {"label": "log-disk|1000000", "bytes": 200_000_000},
            {"label": "log-replay-start|1000000", "events_per_sec": 180000, "events": 200000,
             "first_event_us": 400},
            {"label": "log-replay-middle|1000000", "events_per_sec": 170000, "first_event_us": 800},
            {"label": "retention|1000000", "seconds": 3.5, "read_bytes": 1 << 30, "write_bytes": 0},
            {"label": "subscribers|100", "subscribers": 10, "rate": 2000,
             "server_rss_before_idle_bytes": 10 << 20, "server_rss_with_idle_bytes": 11 << 20,
             "latency_us": {"p99": 2000}},
        )

    def test_rows_carry_each_size(self):
        meta = {"log_sizes_missing": [100_000_000], "disk_free_bytes": 30 << 30,
                "disk_keep_bytes": 12 << 30}
        t = s.table(self.sample(), meta)
        self.assertIn("| topics (1 / 1,000) | unary Publish round robin over the topics | 30,000/s | 20,000/s |", t)
        self.assertIn("| startup: exec to first answer, topics on disk | 50 ms | - |", t)
        self.assertIn("log size (1 M / 100 M events of 1 KiB)", t)
        self.assertIn("| 170,000/s | does not fit (below) |", t)
        self.assertIn("| time to first event, CUSTOM in the middle | 800 µs |", t)
        self.assertIn("| 1,024.0 MiB / 0.0 MiB |", t)
        self.assertIn("subscribers on one topic (100 idle + 10 active)", t)
        self.assertIn("| RSS the idle ones added | 1,024 KiB |", t)
        self.assertIn("at 2,000/s | 2,000 µs |", t)
        # Every table line has the same number of columns.
        widths = {line.count("|") for line in t.splitlines()}
        self.assertEqual(widths, {6}, t)

    def test_the_arithmetic_of_what_does_not_fit(self):
        meta = {"log_sizes_missing": [100_000_000], "disk_free_bytes": 30 << 30,
                "disk_keep_bytes": 12 << 30}
        note = s.does_not_fit(self.sample(), meta)
        self.assertIn("100 M events of 1 KiB are 102.4 GB of payload alone", note)
        self.assertIn("at most 18.00 GiB was ours", note)
        # 200 bytes per event over 1 M: 100 M need 20 GB.
        self.assertIn("200 bytes per event", note)
        self.assertIn("18.63 GiB", note)
        self.assertIn("11 minutes", note)
        self.assertEqual(s.does_not_fit(self.sample(), {}), "")


class Main(unittest.TestCase):
    def test_rewrites_the_section_and_keeps_the_rest(self):
        with tempfile.TemporaryDirectory() as d:
            res, md, notes = (os.path.join(d, n) for n in ("r.jsonl", "B.md", "notes.md"))
            with open(res, "w") as f:
                f.write(json.dumps({"label": "topics|1", "events_per_sec": 5}) + "\n")
                f.write(json.dumps({"label": "meta", "meta": {"date": "2026-12-05"}}) + "\n")
            with open(md, "w") as f:
                f.write("# B\n\n## Commands\nkeep me\n")
            with open(notes, "w") as f:
                f.write("Topics grow because of reasons.\n")
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale_summary.py")
            for _ in range(2):
                subprocess.run([sys.executable, script, res, md, notes], check=True,
                               stdout=subprocess.DEVNULL)
            with open(md) as f:
                text = f.read()
        self.assertTrue(text.startswith("# B\n\n## Commands\nkeep me\n"))
        self.assertEqual(text.count("## Scale table"), 1)
        self.assertIn("Measured 2026-12-05", text)
        self.assertIn("Topics grow because of reasons.", text)
        self.assertIn("| 5/s |", text)


if __name__ == "__main__":
    unittest.main()
