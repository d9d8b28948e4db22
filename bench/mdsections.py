#!/usr/bin/env python3
"""BENCHMARKS.md is written by several scripts; this is how they share it.

bench/summarize.py (run by bench/compare.sh) owns everything above the line
MARKER and rewrites all of it. Below the marker each other script
(bench/channels.sh, bench/console-memory.sh, bench/scale.sh, ...) owns one
"## " section, which it replaces in place or, the first time, appends at the
end; nothing else below the marker is touched.

As a command: `python3 bench/mdsections.py BENCHMARKS.md "Scale table" < section.md`
replaces (or appends) the section "## Scale table" with the text on stdin,
which must start with that heading line.
"""
import sys

MARKER = ("<!-- bench/summarize.py writes everything above this line; each section below "
          "is written by its own script (bench/mdsections.py) and kept as it is. -->")


def split(text):
    """(the generated part, the kept part) of a BENCHMARKS.md text. Without a
    marker (a file from before it existed) the kept part is every "## "
    section whose heading is not one summarize.py writes: see `kept_sections`."""
    at = text.find(MARKER)
    if at < 0:
        return text, None
    return text[:at], text[at + len(MARKER):].lstrip("\n")


def sections(text):
    """The "## " sections of a text as (heading, text) pairs, in order; the
    text before the first heading is dropped."""
    out = []
    starts = [i for i in range(len(text)) if text.startswith("## ", i) and (i == 0 or text[i - 1] == "\n")]
    for n, s in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(text)
        heading = text[s + 3:text.find("\n", s) if text.find("\n", s) >= 0 else len(text)].strip()
        out.append((heading, text[s:end]))
    return out


def kept_sections(text, generated_headings):
    """The part of an existing file that summarize.py must keep: what is below
    the marker, or (no marker yet) every section it does not generate."""
    _, kept = split(text)
    if kept is not None:
        return kept
    return "".join(body.rstrip("\n") + "\n\n" for heading, body in sections(text)
                   if heading not in generated_headings)


def join(generated, kept):
    """The whole file: the generated part, the marker, the kept sections."""
    out = generated.rstrip("\n") + "\n\n" + MARKER + "\n"
    if kept.strip():
        out += "\n" + kept.strip("\n") + "\n"
    return out


def replace_section(text, heading, section):
    """`text` with the section "## heading" below the marker replaced by
    `section`, or `section` appended at the end when there is none. A file
    without a marker gets one at its end first, so that the next
    summarize.py run keeps the section."""
    if not section.startswith(f"## {heading}"):
        raise ValueError(f"the section must start with '## {heading}'")
    generated, kept = split(text)
    if kept is None:
        # Move a section of this name out of the unmarked file, if any.
        old = dict(sections(text)).get(heading)
        if old is not None:
            generated = generated.replace(old, "")
        kept = ""
    body = section.rstrip("\n") + "\n"
    parts = sections(kept)
    if any(h == heading for h, _ in parts):
        kept = "".join(body + "\n" if h == heading else b.rstrip("\n") + "\n\n" for h, b in parts)
    else:
        kept = "".join(b.rstrip("\n") + "\n\n" for _, b in parts) + body
    return join(generated, kept)


def replace_file_section(path, heading, section):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(replace_section(text, heading, section))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mdsections.py FILE HEADING < section.md")
    replace_file_section(sys.argv[1], sys.argv[2], sys.stdin.read())
