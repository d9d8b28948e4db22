#!/usr/bin/env bash
# What a console tab costs the server: the same load (eventbus bench e2e,
# 20,000 events/s of 1 KiB for a minute, one subscriber) twice on one
# server, first with no console open, then with one tab (Debian's headless
# chromium) open on the topic's page, its live tail running, for the whole
# minute. Server RSS (VmRSS from /proc) is sampled every second: before the
# load, at its peak, at the end, and after the tab is closed. Prints the
# table and rewrites the "Web console" section of BENCHMARKS.md.
#
# Usage: bench/console-memory.sh [--quick]   (--quick: 10 s per phase)
# Everything listens on 127.0.0.1 and stops when the script ends.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds=60 rate=20000
if [[ "${1:-}" == "--quick" ]]; then seconds=10; fi
scripts/setup.sh
cargo build --release --bin eventbus
bin="$root/target/release/eventbus"
(cd tests/browser && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

log="$work/server.log"
: >"$log" # exists before the readiness loop reads it
"$bin" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --data-dir "$work/data" --auth none \
  --durability buffered >"$log" 2>&1 &
server=$!; pids+=("$server")
for _ in $(seq 1 300); do
  grep -q "eventbus listening on" "$log" && break
  sleep 0.1 # readiness polling, bounded at 30 s
done
addr="$(sed -n 's/.*eventbus listening on \([0-9.:]*\).*/\1/p' "$log" | head -n1)"
http="$(sed -n 's/.*http api serving on \([0-9.:]*\).*/\1/p' "$log" | head -n1)"
[ -n "$addr" ] && [ -n "$http" ] || { cat "$log" >&2; echo "console-memory: the server did not start" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }

# Samples RSS every second into $1 until $2 exists.
sample() {
  while [ ! -e "$2" ]; do rss_kib >>"$1"; sleep 1; done # a 1 s sampling period, not a synchronisation
}

topic=/event/Bench__e
events=$((rate * seconds))
phase() { # name with-tab(0|1)
  local name="$1" tab="$2"
  local samples="$work/$name.rss" done_flag="$work/$name.done"
  echo "$(rss_kib)" >"$work/$name.before"
  sample "$samples" "$done_flag" &
  local sampler=$!
  "$bin" bench --server "$addr" --server-pid "$server" --topic "$topic" --keep-topic \
    e2e --rate "$rate" --events "$events" --size 1024 --json >"$work/$name.bench" &
  local load=$!
  if [ "$tab" = 1 ]; then
    # The tab opens once the bench created its topic and events flow.
    for _ in $(seq 1 300); do
      curl -fs -o /dev/null "http://$http/console/topic?name=%2Fevent%2FBench__e" && break
      sleep 0.1 # waiting for the topic, bounded at 30 s
    done
    node tests/browser/tab.mjs "$http" "$topic" "$((seconds - 3))" >"$work/$name.tab"
  fi
  wait "$load"
  touch "$done_flag"; wait "$sampler"
  echo "$(rss_kib)" >"$work/$name.after"
}
echo "console-memory: $seconds s at $rate events/s without a console tab" >&2
phase without 0
echo "console-memory: $seconds s at $rate events/s with a tab on $topic" >&2
phase with 1

python3 - "$work" "$root/BENCHMARKS.md" "$seconds" "$rate" "$root/bench" <<'PY'
import json, sys
work, md, seconds, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def mib(kib): return f"{int(kib) / 1024:.1f} MiB"
rows = {}
for name in ("without", "with"):
    samples = [int(l) for l in open(f"{work}/{name}.rss") if l.strip()]
    bench = json.loads(open(f"{work}/{name}.bench").read())
    rows[name] = dict(
        before=int(open(f"{work}/{name}.before").read()),
        peak=max(samples),
        end=samples[-1],
        after=int(open(f"{work}/{name}.after").read()),
        eps=bench["events_per_sec"],
        p99=bench.get("latency_us", {}).get("p99", 0),
    )
tab = json.loads(open(f"{work}/with.tab").read())
w, t = rows["without"], rows["with"]
section = f"""## Web console

`bench/console-memory.sh` (release build, one server, durability buffered): `eventbus bench e2e` at
{rate:,} events/s of 1 KiB for {seconds} s with one subscriber, first with no console open, then with
one tab (Debian's headless chromium) open on the topic's page for the whole run, its live tail
running. Server RSS from `/proc`, sampled every second.

| phase | RSS before | RSS peak | RSS at the end | after the tab closed | delivered events/s | e2e p99 |
|---|---|---|---|---|---|---|
| no tab | {mib(w['before'])} | {mib(w['peak'])} | {mib(w['end'])} | - | {w['eps']:,.0f} | {w['p99']:,} us |
| one tab on the topic | {mib(t['before'])} | {mib(t['peak'])} | {mib(t['end'])} | {mib(t['after'])} | {t['eps']:,.0f} | {t['p99']:,} us |

The tab was open {tab['open_s']:.0f} s and showed {tab['events_shown']:,} events (at most 20 a second;
{tab['skip_notes']:,} notes of skipped events), keeping {tab['items_on_page_at_end']} on the page. Peak RSS with
the tab minus peak RSS without it: {(t['peak'] - w['peak']) / 1024:+.1f} MiB. The second phase starts with what the
first left in memory (RocksDB's memtables and block cache), so compare the peaks and the ends: the
tab's own cost is one decoded page of at most 20 events a second, made only when the connection
took the previous one.
"""
print(section)
sys.path.insert(0, sys.argv[-1])
import mdsections  # BENCHMARKS.md's layout: this section below the generated part
mdsections.replace_file_section(md, "Web console", section)
PY
echo "console-memory: wrote BENCHMARKS.md" >&2
