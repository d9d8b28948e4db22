#!/usr/bin/env bash
# e2e: starts its own server
# The order-fulfillment story end to end, first with the Python pair, then
# with the Node pair, each against its own fresh `eventbus serve`:
#   1. sales publishes $ORDERS orders, one every $INTERVAL_MS ms, and listens
#      for status updates; fulfillment answers each order;
#   2. fulfillment is killed (SIGKILL) while orders keep coming, and started
#      again once a backlog has built up;
#   3. it is killed a second time while it works through that backlog (in
#      the middle of a batch it has not committed yet), and started again;
#   4. once sales has a status for every order, the script checks that
#      every order got exactly one status update, none was lost, and they
#      arrived in the order the orders were created, both in what sales
#      received and in the status topic itself (read with `eventbus
#      subscribe`).
# It prints a summary per language, ends with `N passed, N failed` and exits
# non-zero on any failure. Dependencies are installed next to the programs:
# a virtualenv in python/.venv and node_modules in node/ (`npm ci`).
#
# Usage: examples/order-fulfillment/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Settings: ORDERS (200), INTERVAL_MS (30), LANGS ("python node").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
orders="${ORDERS:-200}"
interval_ms="${INTERVAL_MS:-30}"
langs="${LANGS:-python node}"
# Upper bound, in seconds, of each wait below; the waits poll, so this only
# ends a hang.
wait_s=120

passed=0
failed=0
finish() {
  echo "$passed passed, $failed failed"
  if ((failed > 0)); then exit 1; fi
  exit 0
}
setup_failed() {
  echo "setup: $1"
  failed=$((failed + 1))
  finish
}
[ -x "$bin" ] || setup_failed "$bin not built (cargo build first)"

work="$(mktemp -d)"
. "$here/lib.sh"

# --- helpers -------------------------------------------------------------------

# start_server DIR: a fresh server with this example's topics (and its
# managed subscriptions); sets $server_pid and $addr.
start_server() {
  local dir="$1"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --topics "$here/topics" \
    >"$dir/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  addr=""
  for _ in $(seq 1 300); do
    # The server logs its bound address once it serves.
    addr="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$dir/server.log" | head -n1)"
    [ -n "$addr" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1 # polling for readiness, bounded at 30 s
  done
  cat "$dir/server.log" >&2
  echo "eventbus did not start" >&2
  return 1
}

stop() { # stop PID: SIGTERM and wait
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}
kill_hard() { # kill_hard PID: SIGKILL, as a crash or an OOM kill would
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

# count FILE PATTERN: lines of FILE matching the extended regex PATTERN.
count() {
  local n
  n="$(grep -cE "$2" "$1" 2>/dev/null)" || true
  echo "${n:-0}"
}
statuses() { count "$1/sales.out" '"event": ?"status"'; }
published_orders() { count "$1/sales.out" '"event": ?"order"'; }

# wait_until DESCRIPTION COMMAND...: polls COMMAND every 50 ms until it
# succeeds. Fails after $wait_s seconds, or as soon as one of the processes
# in $must_live ("name:pid" words) has exited.
must_live=""
wait_until() {
  local what="$1" deadline=$((SECONDS + wait_s)) proc
  shift
  until "$@"; do
    for proc in $must_live; do
      if ! kill -0 "${proc#*:}" 2>/dev/null; then
        echo "${proc%:*} exited while waiting until $what" >&2
        return 1
      fi
    done
    if ((SECONDS >= deadline)); then
      echo "timed out after ${wait_s}s waiting until $what" >&2
      return 1
    fi
    sleep 0.05 # polling interval
  done
}
at_least() { [ "$("$1" "$2")" -ge "$3" ]; } # at_least FUNC DIR N
published_by() { [ "$(count "$1" '^.* published status')" -ge "$2" ]; } # LOG N
sales_done() { ! kill -0 "$1" 2>/dev/null; }

start_fulfillment() { # start_fulfillment LANG DIR N: sets $fulfillment_pid
  run fulfillment "$1" --server "$addr" 2>"$2/fulfillment-$3.log" &
  fulfillment_pid=$!
  pids+=("$fulfillment_pid")
}

# --- the story -----------------------------------------------------------------

# story LANG: runs the story once; returns non-zero when the story itself
# could not be played (the checks come after).
story() {
  local lang="$1" dir="$work/$1"
  mkdir -p "$dir"
  start_server "$dir" || return 1
  echo "== $lang: eventbus on $addr, $orders orders, one every ${interval_ms} ms"
  run sales "$lang" --server "$addr" --orders "$orders" --interval-ms "$interval_ms" \
    --timeout "$wait_s" >"$dir/sales.out" 2>"$dir/sales.log" &
  sales_pid=$!
  pids+=("$sales_pid")
  start_fulfillment "$lang" "$dir" 1
  must_live="sales:$sales_pid fulfillment:$fulfillment_pid"

  # 1st kill: fulfillment keeps up with the orders; kill it at 20 %.
  wait_until "sales has $((orders / 5)) status updates" at_least statuses "$dir" $((orders / 5)) || return 1
  kill_hard "$fulfillment_pid"
  must_live="sales:$sales_pid"
  kill1_at="$(statuses "$dir")"
  # While it is down, orders keep coming: wait for a backlog of 20 % more.
  local backlog_at=$((kill1_at + orders / 5))
  ((backlog_at <= orders)) || backlog_at=$orders
  wait_until "a backlog has built up" at_least published_orders "$dir" "$backlog_at" || return 1
  start_fulfillment "$lang" "$dir" 2
  must_live="sales:$sales_pid fulfillment:$fulfillment_pid"

  # 2nd kill: in the middle of the backlog's first batch, which fulfillment
  # commits only after answering every order in it.
  local answered=$((orders / 20 + 1))
  wait_until "the restarted fulfillment has answered $answered orders" \
    published_by "$dir/fulfillment-2.log" "$answered" || return 1
  kill_hard "$fulfillment_pid"
  start_fulfillment "$lang" "$dir" 3
  must_live="fulfillment:$fulfillment_pid"

  # Sales ends by itself once every order has a status (or after its timeout).
  wait_until "sales has a status for every order" sales_done "$sales_pid" || return 1
  sales_rc=0
  wait "$sales_pid" || sales_rc=$?
  forget "$sales_pid"
  stop "$fulfillment_pid"
  # The status topic as it is stored, for the checks.
  timeout 30 "$bin" subscribe /event/OrderStatusUpdated__e --from earliest --count "$orders" \
    --server "$addr" >"$dir/topic.jsonl" 2>"$dir/subscribe.log" || true
  stop "$server_pid"
}

# check LANG: compares what sales published and received; prints one line per
# check and a summary line.
check() {
  local lang="$1" dir="$work/$1" result
  result="$(python3 - "$dir" "$orders" "${sales_rc:-1}" <<'EOF'
import json, sys
from collections import Counter
from pathlib import Path

folder, orders, sales_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lines = [json.loads(l) for l in (folder / "sales.out").read_text().splitlines() if l.strip()]
created = [l for l in lines if l["event"] == "order"]
updates = [l for l in lines if l["event"] == "status"]
# The order of creation is the order of the orders' replay ids.
creation = [l["order"] for l in sorted(created, key=lambda l: int(l["replay_id"], 16))]
received = [u["order"] for u in updates]
per_order = Counter(received)
topic = [json.loads(l) for l in (folder / "topic.jsonl").read_text().splitlines() if l.strip()]
in_topic = [e["payload"]["OrderNumber__c"] for e in topic]
logs = "".join(p.read_text() for p in sorted(folder.glob("fulfillment-*.log")))

checks = [
    (f"sales exited 0", sales_rc == 0),
    (f"all {orders} orders published, each result matched by correlation key",
     len(created) == orders == len(set(creation))),
    ("no order lost: every order has a status update", set(per_order) == set(creation)),
    ("no order duplicated: exactly one status update per order",
     all(n == 1 for n in per_order.values())),
    ("status updates arrived in the order the orders were created", received == creation),
    (f"the status topic holds the same {orders} updates in the same order", in_topic == creation),
]
for name, ok in checks:
    print(("ok   - " if ok else "FAIL - ") + name)
if per_order and any(n > 1 for n in per_order.values()):
    print("       duplicated:", [o for o, n in per_order.items() if n > 1][:10])
if set(creation) - set(per_order):
    print("       lost:", sorted(set(creation) - set(per_order))[:10])
statuses = Counter(u["status"] for u in updates)
print(f"summary: {len(created)} orders, {len(updates)} status updates "
      f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}); "
      f"fulfillment started 3 times, killed twice; {logs.count('skipped ')} orders "
      f"redelivered after a kill were skipped as already answered; "
      f"{logs.count('stream failed')} reconnects")
EOF
)" || result+=$'\nFAIL - the checks themselves failed (see the error above)'
  sed "s/^/$lang: /" <<<"$result"
  passed=$((passed + $(grep -c '^ok' <<<"$result" || true)))
  failed=$((failed + $(grep -c '^FAIL' <<<"$result" || true)))
  if grep -q '^FAIL' <<<"$result"; then
    echo "--- $lang: logs"
    tail -n 5 "$dir"/sales.log "$dir"/fulfillment-*.log
    tail -n 20 "$dir/server.log"
  fi
}

for lang in $langs; do
  if ! "setup_$lang" >"$work/setup-$lang.log" 2>&1; then
    cat "$work/setup-$lang.log"
    echo "FAIL - $lang: installing the dependencies"
    failed=$((failed + 1))
    continue
  fi
  started=$SECONDS
  if ! story "$lang"; then
    stop_all
    echo "FAIL - $lang: the story did not run to its end; logs:"
    tail -n 5 "$work/$lang"/*.log
    failed=$((failed + 1))
    continue
  fi
  check "$lang"
  echo "$lang: took $((SECONDS - started)) s"
done
finish
