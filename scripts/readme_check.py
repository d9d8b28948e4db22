#!/usr/bin/env python3
"""Runs the README's own commands, in order, as a newcomer would.

Every ```sh block of README.md carries a marker comment on the line before it
(invisible on GitHub), and this script refuses a block without one, so a new
command in the README cannot go unchecked by accident:

  <!-- readme-check: run -->                      run the block; it must exit 0
  <!-- readme-check: run; expect: TEXT -->        ... and print TEXT (stdout or stderr)
  <!-- readme-check: background; ready: CMD -->   start the block in the background
                                                  (a server) and wait until CMD succeeds
  <!-- readme-check: stop -->                     (on its own) end the background blocks
  <!-- readme-check: skip: REASON -->             not run, with the reason

Options are separated by `;`, so TEXT and CMD cannot contain one.

All blocks run in one bash session (`source`), so `cd`, variables and
`export`s carry over from block to block as they do in a reader's terminal.
They run in a copy of the repository's tracked files, in a temporary folder,
with the given binary on the PATH as `eventbus`. `cargo install` is the one
command not run for real: the binary under test is what it would install (a
release build takes 15 minutes; `cargo test` has built this one already).

Usage: scripts/readme_check.py [path/to/eventbus]   (default target/debug/eventbus)
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

MARK = re.compile(r"^\s*<!--\s*readme-check:\s*(.*?)\s*-->\s*$")


def blocks(readme):
    """Yields (line number, marker, code) for each ```sh block and bare marker."""
    lines = readme.splitlines()
    i = 0
    problems = []
    out = []
    while i < len(lines):
        line = lines[i]
        m = MARK.match(line)
        if m and m.group(1).strip() == "stop":
            out.append((i + 1, "stop", ""))
            i += 1
            continue
        if line.strip() in ("```sh", "```bash", "```shell"):
            prev = lines[i - 1] if i > 0 else ""
            pm = MARK.match(prev)
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            code = "\n".join(lines[i + 1 : end])
            if not pm:
                problems.append(
                    f"README.md:{i + 1}: a ```sh block without a readme-check marker on the line before"
                )
            else:
                out.append((i + 1, pm.group(1), code))
            i = end + 1
            continue
        i += 1
    return out, problems


def parse_marker(marker):
    """'run; expect: A; expect: B' -> ('run', {'expect': [...], 'ready': [...]})"""
    if marker.startswith("skip"):
        # A reason is free text, semicolons included.
        return "skip", {"reason": [marker.partition(":")[2].strip()]}
    parts = [p.strip() for p in marker.split(";") if p.strip()]
    kind, _, reason = parts[0].partition(":")
    kind = kind.strip()
    opts = {"reason": [reason.strip()]} if reason.strip() else {}
    for p in parts[1:]:
        key, _, value = p.partition(":")
        key = key.strip()
        if key not in ("expect", "ready"):
            raise SystemExit(f"readme-check: unknown option `{key}` in marker `{marker}` (`;` separates options)")
        opts.setdefault(key, []).append(value.strip())
    return kind, opts


def script(steps, work):
    """One bash script that sources each step and checks it."""
    out = [
        "set -euo pipefail",
        'bg_pids=()',
        'current=""',
        # A background block runs in a subshell; its commands are that
        # subshell's children, ended first, then the subshell.
        'stop_bg() { for p in "${bg_pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; '
        'kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; bg_pids=(); }',
        'on_exit() { rc=$?; stop_bg; if [ $rc -ne 0 ] && [ -n "$current" ]; then '
        'echo "readme-check: FAILED at $current (exit $rc); its output:" >&2; '
        'cat "$current_out" >&2 || true; fi; exit $rc; }',
        "trap on_exit EXIT",
        # What the README does not run for real, see the module doc.
        'cargo() { if [ "${1:-}" = install ]; then echo "readme-check: cargo $* (the binary under test is installed)"; '
        'else command cargo "$@"; fi; }',
    ]
    for n, (line, marker, code) in enumerate(steps):
        kind, opts = parse_marker(marker)
        step = os.path.join(work, f"step-{n}.sh")
        log = os.path.join(work, f"step-{n}.out")
        with open(step, "w", encoding="utf-8") as f:
            f.write(code + "\n")
        where = shlex.quote(f"README.md:{line}")
        if kind == "skip":
            reason = " ".join(opts.get("reason", [])) or "no reason given"
            out.append(f"echo readme-check: skip {where}: {shlex.quote(reason)}")
            continue
        if kind == "stop":
            out.append(f'echo "readme-check: stop servers ({where})"; stop_bg')
            continue
        out.append(f'current={where}; current_out={shlex.quote(log)}')
        out.append(f'echo "readme-check: {kind} {where}"')
        if kind == "background":
            out.append(f"( source {shlex.quote(step)} ) >{shlex.quote(log)} 2>&1 &")
            out.append('bg_pids+=($!)')
            for ready in opts.get("ready", []):
                out.append(
                    "ok=0; for _ in $(seq 1 600); do "
                    f"if ( set +o pipefail; {ready} ) >/dev/null 2>&1; then ok=1; break; fi; "
                    'kill -0 "${bg_pids[-1]}" 2>/dev/null || break; '
                    "sleep 0.2; done  # readiness poll, bounded at 120 s"
                )
                out.append(
                    f'[ $ok -eq 1 ] || {{ echo "readme-check: not ready: {ready}" >&2; false; }}'
                )
        elif kind == "run":
            out.append(f"source {shlex.quote(step)} >{shlex.quote(log)} 2>&1")
            for text in opts.get("expect", []):
                out.append(
                    f"grep -qF -- {shlex.quote(text)} {shlex.quote(log)} || "
                    f'{{ echo "readme-check: {where} did not print: "{shlex.quote(text)} >&2; false; }}'
                )
        else:
            raise SystemExit(f"README.md:{line}: unknown readme-check kind `{kind}`")
    out.append('current=""')
    out.append('echo "readme-check: all steps passed"')
    return "\n".join(out) + "\n"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/debug/eventbus"))
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"readme-check: {binary} is not built (cargo build first)")
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        steps, problems = blocks(f.read())
    if problems:
        raise SystemExit("\n".join(problems))
    with tempfile.TemporaryDirectory(prefix="readme-check-") as tmp:
        repo = os.path.join(tmp, "eventbus")
        os.makedirs(repo)
        files = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True
        ).stdout.split(b"\0")
        for name in filter(None, files):
            src = os.path.join(root, name.decode())
            if not os.path.lexists(src):
                continue
            dst = os.path.join(repo, name.decode())
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        os.symlink(binary, os.path.join(bindir, "eventbus"))
        work = os.path.join(tmp, "steps")
        os.makedirs(work)
        path = os.path.join(work, "readme.sh")
        with open(path, "w", encoding="utf-8") as f:
            f.write(script(steps, work))
        env = dict(os.environ)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        # The reader's environment starts clean of eventbus settings.
        for key in list(env):
            if key.startswith("EVENTBUS_"):
                del env[key]
        rc = subprocess.run(["bash", path], cwd=repo, env=env).returncode
        sys.exit(rc)


if __name__ == "__main__":
    main()
