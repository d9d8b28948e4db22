#!/usr/bin/env bash
# The cost of custom channels: durable publish (PublishStream, 4 streams x
# 100 events/request x 8 in flight, 1 KiB events) to a topic that 10
# filtered event channels follow, beside the same publish to a server
# without channels; the same binary, alternated runs, three repetitions.
# Of the 10 channels one takes every event (`CreatedDate > 0`) and nine take
# none (`CreatedDate < N`): every filter is evaluated on every event, and
# every event is written twice (source and channel) in one atomic batch.
# Prints events/s and server CPU per event, medians and the ratio, and
# rewrites the "Custom channels" section of BENCHMARKS.md.
#
# Usage: bench/channels.sh [--quick]   (--quick: a tenth of the events, one repetition)
# Everything listens on 127.0.0.1 and stops when the script ends.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
reps=3 events=200000
if [[ "${1:-}" == "--quick" ]]; then reps=1 events=20000; fi
scripts/setup.sh
cargo build --release --bin eventbus
bin="$root/target/release/eventbus"

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # log file, pattern
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1 # readiness polling, bounded at 30 s
  done
  cat "$1" >&2; echo "channels: $1 never showed '$2'" >&2; return 1
}

# The bench topic (the load generator's schema) and a DX project with the
# channels and their members.
mkdir -p "$work/topics/event" "$work/dx/platformEventChannels" "$work/dx/platformEventChannelMembers"
# The load generator's schema (src/bench/payload.rs).
echo '{"type":"record","name":"Bench__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Data__c","type":"string"}]}' \
  >"$work/topics/event/Bench__e.avsc"
for i in $(seq 0 9); do
  cat >"$work/dx/platformEventChannels/C${i}__chn.platformEventChannel-meta.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<PlatformEventChannel xmlns="http://soap.sforce.com/2006/04/metadata">
    <channelType>event</channelType>
    <label>Channel $i</label>
</PlatformEventChannel>
XML
  if [ "$i" -eq 0 ]; then filter="CreatedDate &gt; 0"; else filter="CreatedDate &lt; $i"; fi
  cat >"$work/dx/platformEventChannelMembers/C${i}_chn_Bench_e.platformEventChannelMember-meta.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<PlatformEventChannelMember xmlns="http://soap.sforce.com/2006/04/metadata">
    <eventChannel>C${i}__chn</eventChannel>
    <selectedEntity>Bench__e</selectedEntity>
    <filterExpression>$filter</filterExpression>
</PlatformEventChannelMember>
XML
done
mkdir -p "$work/dx/objects"

start() { # name extra-serve-args...
  local name="$1"; shift
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/$name" --topics "$work/topics" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  wait_for "$work/$name.log" "listening on"
  local addr; addr="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/$name.log" | head -n1)"
  printf -v "addr_$name" '%s' "$addr"; printf -v "pid_$name" '%s' "$pid"
}
start plain
start channels --metadata "$work/dx"

results="$work/results.jsonl"
for rep in $(seq 1 "$reps"); do
  for name in plain channels; do
    a="addr_$name" p="pid_$name"
    echo "channels: repetition $rep, $name" >&2
    "$bin" bench --server "${!a}" --server-pid "${!p}" --keep-topic \
      publish --events "$events" --streams 4 --batch 100 --window 8 --size 1024 --json \
      | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["label"]=sys.argv[1]; print(json.dumps(r))' "$name" >>"$results"
  done
done
python3 - "$results" "$root/BENCHMARKS.md" "$reps" "$events" "$root/bench" <<'PY'
import json, statistics, sys
results, md, reps, events = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(results)]
def med(label, f):
    return statistics.median(f(r) for r in rows if r["label"] == label)
eps = {l: med(l, lambda r: r["events_per_sec"]) for l in ("plain", "channels")}
cpu = {l: med(l, lambda r: r["server_cpu_seconds"] / r["events"] * 1e6) for l in ("plain", "channels")}
section = f"""## Custom channels

`bench/channels.sh` ({reps} repetitions, medians; {events} events of 1 KiB per run, PublishStream
4 streams x 100 events/request x 8 in flight, durability sync): one topic followed by 10 filtered
event channels (one takes every event, nine take none; every filter is evaluated on every event and
each event is written to the source and one channel in the same atomic batch), beside the same
publish to a server without channels.

| server | events/s | server CPU per event |
|---|---|---|
| no channels | {eps['plain']:,.0f} | {cpu['plain']:.1f} us |
| 10 filtered channels | {eps['channels']:,.0f} | {cpu['channels']:.1f} us |
| ratio | {eps['channels']/eps['plain']:.2f}x | {cpu['channels']/cpu['plain']:.2f}x |
"""
print(section)
sys.path.insert(0, sys.argv[-1])
import mdsections  # BENCHMARKS.md's layout: this section below the generated part
mdsections.replace_file_section(md, "Custom channels", section)
PY
echo "channels: wrote BENCHMARKS.md" >&2
