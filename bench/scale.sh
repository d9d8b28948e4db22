#!/usr/bin/env bash
# How cost grows as the work grows: the "Scale table" of BENCHMARKS.md.
# Each row is a figure at three sizes, on eventbus (release build, RocksDB
# backend, durability buffered so big logs fill fast):
#   topics       1 / 1,000 / 100,000: unary Publish round robin over them,
#                server RSS, startup time with them on disk;
#   subscribers  1 / 100 / 10,000 idle on one topic + 10 active: RSS and
#                the active ones' delivery p99 at a fixed rate;
#   log size     1 M / 10 M / 30 M events of 1 KiB (100 M does not fit the
#                budget: the section shows the arithmetic): fill rate, replay from
#                the start, middle and end, time to first event after a
#                CUSTOM subscribe, restart after SIGKILL and after SIGTERM,
#                and retention: time and I/O to expire the whole log, with
#                a publisher's p99 beside it.
# Rewrites only the text between <!-- scale-table:begin --> and
# <!-- scale-table:end --> in BENCHMARKS.md (appending them when absent);
# raw results go to bench/scale-results.jsonl; bench/scale-notes.md (the
# paragraphs under the table, written by people from a run's numbers: revisit
# them after a new run) is copied in. Data folders are deleted at
# the end, every server listens on 127.0.0.1 and stops when the script ends.
#
# Usage: bench/scale.sh [--quick]
#   --quick: sizes 1 / 1,000 / 10,000 topics, 1 / 100 / 1,000 idle
#            subscribers, logs of 100,000 and 1 M events (a few minutes).
# Environment: EVENTBUS_BIN=path uses that binary instead of building;
#   SCALE_KEEP_GB (default 12) is the free space on the data folder's disk
#   the logs must leave; SCALE_LOG_SIZES="1000000 10000000" sets the log
#   sizes (a size that would not leave that space is skipped and reported).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=0
if [[ "${1:-}" == "--quick" ]]; then quick=1; fi
if [ "$quick" = 1 ]; then
  topic_sizes=(1 1000 10000) idle_sizes=(1 100 1000) log_sizes=(100000 1000000)
  topic_events=20000 sub_events=4000 replay_events=50000 probe_idle=2000
else
  topic_sizes=(1 1000 100000) idle_sizes=(1 100 10000) log_sizes=(1000000 10000000 30000000)
  topic_events=200000 sub_events=20000 replay_events=200000 probe_idle=5000
fi
if [ -n "${SCALE_LOG_SIZES:-}" ]; then read -r -a log_sizes <<<"$SCALE_LOG_SIZES"; fi
# The issue's 100 M does not fit this script's budget (see the arithmetic
# in the section) unless SCALE_LOG_SIZES names it.
missing_sizes=()
case " ${log_sizes[*]} " in *" 100000000 "*) ;; *) missing_sizes=(100000000) ;; esac
active=10 sub_rate=2000 probe_rate=1000
restarts=3 # clean restarts per size (the table shows the median; a SIGKILL restart needs a refill, so once)
keep_bytes=$(( ${SCALE_KEEP_GB:-12} * 1024 * 1024 * 1024 ))

if [ -n "${EVENTBUS_BIN:-}" ]; then
  bin="$EVENTBUS_BIN"
else
  scripts/setup.sh
  cargo build --release --bin eventbus
  bin="$root/target/release/eventbus"
fi

work="$(mktemp -d)"
server="" # the one server running at a time
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
results="$work/results.jsonl"
: >"$results"

# Free loopback ports chosen by the kernel.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ns() { date +%s%N; }
free_bytes() { df -B1 --output=avail "$work" | tail -n1 | tr -d ' '; }
rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
io_of() { # pid -> "read_bytes write_bytes rchar wchar"
  awk '/^read_bytes:/ {r=$2} /^write_bytes:/ {w=$2} /^rchar:/ {rc=$2} /^wchar:/ {wc=$2} END {print r, w, rc, wc}' "/proc/$1/io"
}

# Appends stdin's JSON object to the results with "label" set to $1 and
# any further key=number pairs merged in.
record() {
  python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
r["label"] = sys.argv[1]
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    r[k] = json.loads(v)
print(json.dumps(r))' "$@" >>"$results"
}

# Starts a server on $1 (data folder) with a fresh port; sets $server,
# $addr and $started_ns. Does not wait for it.
start_server() {
  addr="127.0.0.1:$(port)"
  started_ns="$(now_ns)"
  "$bin" serve --listen "$addr" --data-dir "$1" --auth none --durability buffered \
    --fault-injection --log-format text >>"$work/server.log" 2>&1 &
  server=$!
}
# Waits until the server answers DescribeTopic of $1; prints the bench
# report (seconds_to_ready from the exec).
wait_ready() {
  "$bin" bench ready --server "$addr" --server-pid "$server" --topic "$1" \
    --started-at-ns "$started_ns" --max-time 600s --json
}
# Starts a server on an empty folder, ready once it serves gRPC.
start_fresh() {
  rm -rf "$1"; mkdir -p "$1"
  start_server "$1"
  for _ in $(seq 1 300); do
    if "$bin" topic list --server "$addr" >/dev/null 2>&1; then return 0; fi
    sleep 0.1 # readiness polling, bounded at 30 s
  done
  tail -n 20 "$work/server.log" >&2; echo "scale: the server did not start" >&2; return 1
}
# Stops the server with signal $1 (TERM or KILL) and waits for it to exit;
# sets $stop_s to the seconds that took. (Not in a subshell: only this
# shell can wait for its child.)
stop_server() {
  local t0; t0="$(now_ns)"
  kill "-$1" "$server"
  wait "$server" 2>/dev/null || true
  server=""
  stop_s="$(python3 -c 'import sys; print((int(sys.argv[2]) - int(sys.argv[1])) / 1e9)' "$t0" "$(now_ns)")"
}
bench() { "$bin" bench --server "$addr" --server-pid "$server" --json "$@"; }

echo "scale: load $(cut -d' ' -f1-3 /proc/loadavg) at the start" >&2
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
disk_free="$(free_bytes)"
t_all="$(now_ns)"

# --- topics ---------------------------------------------------------------
for n in "${topic_sizes[@]}"; do
  echo "scale: $n topics" >&2
  data="$work/topics-$n"
  start_fresh "$data"
  bench topics --topic-count "$n" --events "$topic_events" --streams 32 --batch 10 --max-time 1800s \
    | record "topics|$n"
  stop_server TERM
  for _ in $(seq 1 "$restarts"); do
    start_server "$data"
    ready="$(wait_ready "/event/Scale$((n - 1))__e")"
    record "topics-ready|$n" "server_rss_bytes=$(rss_bytes "$server")" <<<"$ready"
    stop_server TERM
  done
  rm -rf "$data"
done

# --- subscribers ----------------------------------------------------------
data="$work/subscribers"
start_fresh "$data"
for n in "${idle_sizes[@]}"; do
  echo "scale: $n idle subscribers + $active active" >&2
  bench subscribers --topic /event/Subs__e --subscriptions "$n" --subscribers "$active" \
    --rate "$sub_rate" --events "$sub_events" --max-time 600s | record "subscribers|$n"
done
stop_server TERM
rm -rf "$data"

# --- log size, restart, retention ------------------------------------------
log_topic=/event/Log__e
per_event=1100 # bytes on disk per event: uncompressed until a log was measured
for n in "${log_sizes[@]}"; do
  need=$(( n * per_event * 2 )) # twice the estimate: compaction rewrites files
  if (( $(free_bytes) - need < keep_bytes )); then
    echo "scale: $n events (about $need bytes with compaction headroom) would leave less than $keep_bytes bytes free; skipped" >&2
    missing_sizes=("$n" "${missing_sizes[@]}")
    continue
  fi
  echo "scale: log of $n events" >&2
  data="$work/log-$n"
  start_fresh "$data"
  bench --topic "$log_topic" --keep-topic --max-time 3600s \
    publish --events "$n" --streams 4 --batch 500 --window 8 --size 1024 | record "log-fill|$n"
  used="$(du -sb "$data" | cut -f1)"
  echo "{\"bytes\": $used}" | record "log-disk|$n"
  per_event=$(( used / n + 1 ))
  # Killed right after filling: the write-ahead log holds what the memtables
  # had not flushed, and the restart replays it.
  stop_server KILL
  start_server "$data"
  wait_ready "$log_topic" | record "restart-kill|$n"
  for from in start middle end; do
    bench --topic "$log_topic" --max-time 600s replay-at --from "$from" --events "$replay_events" \
      | record "log-replay-$from|$n"
  done
  for _ in $(seq 1 "$restarts"); do
    stop_server TERM
    start_server "$data"
    wait_ready "$log_topic" | record "restart-term|$n" "stop_seconds=$stop_s"
  done
  # Retention: one ExpireEvents call deletes every event of the log, as the
  # retention sweep would once they passed its age; a probe publishes one
  # event at a time to another topic before and during it.
  bench --topic /event/Probe__e probe --rate "$probe_rate" --events "$probe_idle" \
    | record "retention-probe-idle|$n"
  stop_file="$work/probe.stop"; rm -f "$stop_file"
  bench --topic /event/Probe__e --max-time 3600s probe --rate "$probe_rate" --events 100000000 \
    --until-file "$stop_file" >"$work/probe.json" &
  probe=$!
  sleep 1 # the probe has its topic and is publishing
  read -r rb0 wb0 rc0 wc0 < <(io_of "$server")
  t0="$(now_ns)"
  "$bin" fault expire-events "$log_topic" --older-than 0s --server "$addr" --timeout 3600s >"$work/expire.out"
  t1="$(now_ns)"
  read -r rb1 wb1 rc1 wc1 < <(io_of "$server")
  touch "$stop_file"; wait "$probe"
  record "retention-probe-during|$n" <"$work/probe.json"
  python3 -c '
import json, sys
t0, t1, rb0, wb0, rc0, wc0, rb1, wb1, rc1, wc1 = map(int, sys.argv[1:11])
print(json.dumps({"seconds": (t1 - t0) / 1e9, "read_bytes": rb1 - rb0, "write_bytes": wb1 - wb0,
                  "rchar": rc1 - rc0, "wchar": wc1 - wc0, "cli_output": sys.argv[11].strip()}))' \
    "$t0" "$t1" "$rb0" "$wb0" "$rc0" "$wc0" "$rb1" "$wb1" "$rc1" "$wc1" "$(cat "$work/expire.out")" \
    | record "retention|$n"
  stop_server TERM
  rm -rf "$data"
done

total_s="$(python3 -c 'import sys; print((int(sys.argv[2]) - int(sys.argv[1])) / 1e9)' "$t_all" "$(now_ns)")"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$quick" "$disk_free" "$keep_bytes" "$load_start" "$load_end" "$total_s" "$("$bin" --version)" \
  "$restarts" "${missing_sizes[@]}" <<'PY' | record meta
import datetime, json, sys
quick, free, keep, load0, load1, total, version, restarts = sys.argv[1:9]
missing = sorted(int(x) for x in sys.argv[9:])
print(json.dumps({"meta": {
    "quick": quick == "1",
    "date": datetime.date.today().isoformat(),
    "version": version,
    "disk_free_bytes": int(free),
    "disk_keep_bytes": int(keep),
    "log_sizes_missing": missing,
    "total_seconds": float(total),
    "restarts": int(restarts),
    # The run itself keeps about 2 of the 2 cores busy: a 1-minute load
    # average above 1 at its start means other work shared the machine.
    "busy_note": (f"**The machine was busy**: 2 cores shared with other builds and benchmarks "
                  f"(load average {load0} at the start, {load1} at the end; the run took "
                  f"{float(total) / 60:.0f} minutes), so read the figures for how they grow, not as "
                  f"absolute numbers." if float(load0.split()[0]) > 1.0 else
                  f"Nothing else ran on the machine (load average {load0} at the start; "
                  f"{load1} at the end is the run's own); the run took "
                  f"{float(total) / 60:.0f} minutes. Each cell is one run: read small differences "
                  f"as noise."),
}}))
PY

cp "$results" "$root/bench/scale-results.jsonl"
python3 "$root/bench/scale_summary.py" "$results" "$root/BENCHMARKS.md" "$root/bench/scale-notes.md"
echo "scale: wrote the Scale table of BENCHMARKS.md in $total_s s" >&2
