#!/usr/bin/env python3
"""The layering rule of the workspace, checked (run by scripts/check-layers.sh).

1. The crate graph: each crate may depend only on the eventbus crates listed
   for it in CRATES (below it), and the heavy dependencies stay in their
   layer: tonic/prost only in the root crate (protocol, server, clients),
   apache-avro only in eventbus-schema, rocksdb only in eventbus-rocksdb,
   async-nats only in eventbus-jetstream and the root (the load generator's
   JetStream peer). The compiler then refuses any import across the rule.
2. Inside every crate, no cycle between its top-level modules (a module is a
   file or folder directly under src/; `crate::Name` re-exported by the crate
   root counts as an edge to the module it comes from), and no cycle between
   the files of any folder module (src/cli/commands.rs and src/cli/managed.rs
   may not import each other).
3. Inside the root crate, the module rules of src/lib.rs (ROOT_RULES).

Comments are ignored. Prints every offence and exits 1 if there is any.
"""

import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# crate folder -> (package name, eventbus crates it may depend on)
CRATES = {
    "crates/core": ("eventbus-core", set()),
    "crates/schema": ("eventbus-schema", {"eventbus-core"}),
    "crates/rocksdb": ("eventbus-rocksdb", {"eventbus-core"}),
    "crates/jetstream": ("eventbus-jetstream", {"eventbus-core"}),
    "crates/broker": ("eventbus-broker", {"eventbus-core", "eventbus-schema"}),
    "crates/objects": ("eventbus-objects", {"eventbus-core", "eventbus-schema"}),
    "crates/filter": ("eventbus-filter", set()),
    "crates/faults": ("eventbus-faults", {"eventbus-core"}),
    "crates/channels": (
        "eventbus-channels",
        {
            "eventbus-core",
            "eventbus-schema",
            "eventbus-objects",
            "eventbus-filter",
            "eventbus-broker",
        },
    ),
    "crates/cdc": (
        "eventbus-cdc",
        {
            "eventbus-core",
            "eventbus-schema",
            "eventbus-objects",
            "eventbus-broker",
            "eventbus-filter",
            "eventbus-channels",
        },
    ),
    ".": (
        "eventbus",
        {
            "eventbus-core",
            "eventbus-schema",
            "eventbus-rocksdb",
            "eventbus-jetstream",
            "eventbus-broker",
            "eventbus-objects",
            "eventbus-cdc",
            "eventbus-filter",
            "eventbus-channels",
            "eventbus-faults",
        },
    ),
}

# external dependency -> the crates that may list it (normal or dev)
CONFINED = {
    "tonic": {"."},
    "tonic-prost": {"."},
    "tonic-prost-build": {"."},
    "tonic-health": {"."},
    "tonic-reflection": {"."},
    "prost": {"."},
    "apache-avro": {"crates/schema"},
    "rocksdb": {"crates/rocksdb"},
    "async-nats": {"crates/jetstream", "."},
}

# Root crate: (module whose files are checked, modules it must not name, why)
ROOT_RULES = [
    ("transport", {"api", "server", "config", "cli", "bench", "broker"},
     "transport is below the protocol layer and the engine's callers"),
    ("tls", {"api", "server", "config", "cli", "bench", "broker", "transport"},
     "tls only loads certificates"),
    ("auth", {"api", "server", "config", "cli", "bench", "broker", "transport"},
     "auth is below the protocol layer"),
    ("telemetry", {"api", "server", "config", "cli", "bench", "broker"},
     "telemetry serves metrics; it knows no layer above it"),
    ("api", {"server", "config", "cli", "bench"},
     "the protocol layer knows no server wiring and no client"),
    ("cli", {"server", "config", "bench", "broker", "cdc", "channels", "log", "transport",
             "command_line", "backend"},
     "the client commands talk to a server over gRPC only"),
    ("bench", {"server", "config", "cli", "broker", "cdc", "channels", "log", "transport",
               "command_line", "backend"},
     "the load generator talks to a server over gRPC only"),
    ("client", {"server", "config", "cli", "bench", "broker", "cdc", "channels", "log",
                "command_line", "backend"},
     "the plumbing the clients share names no client, engine or log"),
    ("console", {"server", "config", "cli", "bench", "command_line", "backend"},
     "the web console serves pages over the HTTP context; it knows no server wiring and no client"),
    ("config", {"server", "cli", "bench", "command_line", "backend"},
     "server settings know no client, no command line and no server wiring"),
    ("backend", {"server", "api", "cli", "bench", "command_line"},
     "opening the log knows nothing above it"),
    ("health_listener", {"server", "cli", "bench", "command_line", "broker"},
     "the health listener serves health only"),
    ("server", {"cli", "bench", "client", "command_line"}, "the server composes no client"),
]

COMMENT = re.compile(r"^\s*//")


def code_lines(path):
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not COMMENT.match(line):
            yield n, line


def deps_of(manifest):
    data = tomllib.loads(manifest.read_text())
    names = set()
    for table in ("dependencies", "dev-dependencies", "build-dependencies"):
        names |= set(data.get(table, {}))
    return names


def check_manifests(problems):
    for folder, (package, allowed) in CRATES.items():
        manifest = ROOT / folder / "Cargo.toml"
        data = tomllib.loads(manifest.read_text())
        if data.get("package", {}).get("name") != package:
            problems.append(f"{manifest}: expected package {package}")
        deps = deps_of(manifest)
        for dep in sorted(deps):
            if dep.startswith("eventbus-") and dep not in allowed:
                problems.append(
                    f"{folder}/Cargo.toml: {package} may not depend on {dep} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
                )
            if dep in CONFINED and folder not in CONFINED[dep]:
                problems.append(
                    f"{folder}/Cargo.toml: {dep} belongs only in "
                    f"{', '.join(sorted(CONFINED[dep]))}"
                )
    listed = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("crates/*/Cargo.toml")}
    for extra in sorted(listed - set(CRATES)):
        problems.append(f"{extra}: a crate with no place in scripts/layers.py CRATES")


def top_modules(src):
    mods = {}
    for entry in src.iterdir():
        if entry.name in ("lib.rs", "main.rs"):
            continue
        if entry.is_dir():
            mods[entry.name] = sorted(entry.rglob("*.rs"))
        elif entry.suffix == ".rs":
            mods[entry.stem] = [entry]
    return mods


def root_reexports(src, mods):
    """Names the crate root re-exports from one of its modules."""
    names = {}
    lib = src / "lib.rs"
    if not lib.exists():
        return names
    text = lib.read_text()
    for m in re.finditer(r"pub use (\w+)::([^;]+);", text):
        module = m.group(1)
        if module not in mods:
            continue
        for name in re.findall(r"\b(\w+)\b", m.group(2)):
            names.setdefault(name, module)
    return names


def stripped(path):
    """The file's text with line comments blanked (line numbers kept)."""
    return "\n".join(
        "" if COMMENT.match(line) else line for line in path.read_text().splitlines()
    )


def group_heads(text, start):
    """The first path segment of every item of the `{...}` group at start."""
    depth, item, heads = 0, "", []
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(item)
                break
        if depth == 1 and ch == ",":
            heads.append(item)
            item = ""
        elif depth >= 1:
            item += ch
    return [m.group(1) for h in heads if (m := re.match(r"\s*(\w+)", h))]


def references(text, prefix):
    """(name, offset) of every path segment right after `prefix`, including
    each item of a `prefix{a, b::c}` group."""
    for m in re.finditer(prefix + r"(\{|\w+)", text):
        if m.group(1) == "{":
            for name in group_heads(text, m.start(1)):
                yield name, m.start()
        else:
            yield m.group(1), m.start()


def module_edges(src):
    mods = top_modules(src)
    reexports = root_reexports(src, mods)
    edges = {m: {} for m in mods}
    for module, files in mods.items():
        for f in files:
            depth = len(f.relative_to(src).parts) - 1
            if f.name == "mod.rs":
                depth -= 1
            # `super::` from a file at depth d climbs d + 1 levels; a file
            # directly under src/ (depth 0) reaches the crate root with one.
            text = stripped(f)
            found = list(references(text, r"\bcrate::"))
            found += list(references(text, r"\bsuper::" + r"super::" * depth))
            for name, at in found:
                target = name if name in mods else reexports.get(name)
                if target and target != module:
                    line = text.count("\n", 0, at) + 1
                    edges[module].setdefault(target, f"{f.relative_to(ROOT)}:{line}")
    return edges


def find_cycle(edges):
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check_cycles(problems):
    for folder, (package, _) in CRATES.items():
        edges = module_edges(ROOT / folder / "src")
        cycle = find_cycle(edges)
        if cycle:
            where = "; ".join(
                f"{a} -> {b} at {edges[a][b]}" for a, b in zip(cycle, cycle[1:])
            )
            problems.append(f"{package}: module cycle {' -> '.join(cycle)} ({where})")


def folder_edges(folder, crate_src):
    """Edges between the files of one folder module (mod.rs aside: it
    declares and re-exports)."""
    files = {f.stem: f for f in folder.glob("*.rs") if f.name != "mod.rs"}
    files.update({d.name: d / "mod.rs" for d in folder.iterdir() if (d / "mod.rs").exists()})
    module_path = "::".join(folder.relative_to(crate_src).parts)
    edges = {name: {} for name in files}
    for name, f in files.items():
        text = stripped(f)
        up = r"\bsuper::" if f.name != "mod.rs" else r"\bsuper::super::"
        found = list(references(text, up))
        found += list(references(text, r"\bcrate::" + module_path + "::"))
        for target, at in found:
            if target in files and target != name:
                line = text.count("\n", 0, at) + 1
                edges[name].setdefault(target, f"{f.relative_to(ROOT)}:{line}")
    return edges


def check_folder_cycles(problems):
    for folder in CRATES:
        src = ROOT / folder / "src"
        for d in sorted(p for p in src.rglob("*") if p.is_dir()):
            edges = folder_edges(d, src)
            cycle = find_cycle(edges)
            if cycle:
                where = "; ".join(
                    f"{a} -> {b} at {edges[a][b]}" for a, b in zip(cycle, cycle[1:])
                )
                problems.append(
                    f"{d.relative_to(ROOT)}: files import each other in a circle "
                    f"{' -> '.join(cycle)} ({where})"
                )


def check_root_rules(problems):
    src = ROOT / "src"
    mods = top_modules(src)
    for module, banned, why in ROOT_RULES:
        for f in mods.get(module, []):
            text = stripped(f)
            for name, at in references(text, r"\bcrate::"):
                if name in banned:
                    n = text.count("\n", 0, at) + 1
                    problems.append(
                        f"{f.relative_to(ROOT)}:{n}: {module} names crate::{name}: {why}"
                    )
    # tonic/prost stay in the protocol layer, the server and the clients.
    allowed = (
        "api", "cli", "bench", "client", "server", "health_listener", "transport", "tls",
        "fuzzing", "command_line",
    )
    for module, files in mods.items():
        if module in allowed:
            continue
        for f in files:
            for n, line in code_lines(f):
                if re.search(r"\b(tonic|prost)::|\buse (tonic|prost)\b", line):
                    problems.append(
                        f"{f.relative_to(ROOT)}:{n}: tonic/prost outside the protocol "
                        "layer, the server and the clients"
                    )


def main():
    problems = []
    check_manifests(problems)
    check_cycles(problems)
    check_folder_cycles(problems)
    check_root_rules(problems)
    for p in problems:
        print(f"layering: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
