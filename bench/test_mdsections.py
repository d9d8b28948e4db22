#!/usr/bin/env python3
"""Tests of bench/mdsections.py, BENCHMARKS.md's shared layout:
`python3 -m unittest discover -s bench -p 'test_*.py'`."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mdsections as m  # noqa: E402

GENERATED = "# Benchmarks\n\n## Throughput\n\n| a |\n\n## Targets (issue 4)\n\nrows\n"


class Layout(unittest.TestCase):
    def test_a_regenerated_file_keeps_every_section_below_the_marker(self):
        text = m.join(GENERATED, "## Custom channels\n\nc\n\n## Scale table\n\ns\n")
        again = m.join(GENERATED.replace("| a |", "| b |"), m.kept_sections(text, {"Throughput"}))
        self.assertIn("| b |", again)
        self.assertNotIn("| a |", again)
        self.assertEqual(again.split(m.MARKER)[1], text.split(m.MARKER)[1])
        self.assertEqual(again.count(m.MARKER), 1)

    def test_a_file_without_marker_keeps_the_sections_summarize_does_not_write(self):
        old = GENERATED + "\n## Custom channels\n\nc\n\n## Web console\n\nw\n"
        kept = m.kept_sections(old, {"Throughput", "Targets (issue 4)"})
        self.assertEqual(kept, "## Custom channels\n\nc\n\n## Web console\n\nw\n\n")

    def test_a_section_is_replaced_in_place_or_appended_at_the_end(self):
        text = m.join(GENERATED, "## Custom channels\n\nc\n\n## Web console\n\nw\n")
        text = m.replace_section(text, "Custom channels", "## Custom channels\n\nc2\n")
        self.assertLess(text.index("c2"), text.index("## Web console"))
        self.assertNotIn("\nc\n", text)
        text = m.replace_section(text, "Scale table", "## Scale table\n\n| topics |\n")
        self.assertTrue(text.endswith("## Scale table\n\n| topics |\n"), text)
        self.assertLess(text.index(m.MARKER), text.index("## Custom channels"))
        self.assertIn("| a |", text)

    def test_a_file_without_marker_gets_one_and_the_section_moves_below_it(self):
        old = GENERATED + "\n## Custom channels\n\nc\n"
        text = m.replace_section(old, "Custom channels", "## Custom channels\n\nc2\n")
        self.assertEqual(text.count("## Custom channels"), 1)
        self.assertLess(text.index(m.MARKER), text.index("## Custom channels"))
        self.assertLess(text.index("## Targets (issue 4)"), text.index(m.MARKER))

    def test_a_section_must_carry_its_heading(self):
        with self.assertRaises(ValueError):
            m.replace_section(GENERATED, "Scale table", "no heading\n")


if __name__ == "__main__":
    unittest.main()
