#!/usr/bin/env bash
# e2e: starts its own server
# The order-fulfillment pair under the failures Salesforce's Pub/Sub API
# puts clients through, injected on purpose (eventbus serve
# --fault-injection, `eventbus fault`). For Python and then for Node, each
# against its own fresh server, while sales publishes $ORDERS orders:
#   a. `service.unavailable` mid-stream: fulfillment's ManagedSubscribe (and
#      then sales' status stream) ends with INTERNAL and the error-code
#      trailer sfdc.platform.eventbus.grpc.service.unavailable after some
#      events;
#   b. a dropped connection: fulfillment's connection is closed under it;
#   c. a stall past the client's keepalive timeout: fulfillment's stream
#      stops sending events and keepalives for 8 s, the client gives up on
#      it after 3 s (--keepalive-timeout) and opens a new one;
#   d. an expired replay id: fulfillment is killed in the middle of a batch
#      (some orders answered, not committed), the topic's retention horizon
#      moves past its committed position (`eventbus fault expire-events`),
#      and the restarted fulfillment is given the subscription's
#      error-recovery replay (EARLIEST): it skips what it already answered.
# Each rule matches a call when the call starts, so the script adds the next
# rule once the previous one was taken by a stream (`eventbus fault list`).
# Then it checks that every order got exactly one status, none was lost,
# statuses came in the order of the orders, and that every fault happened
# (the server's /metrics, pubsub_faults_injected_total, and what the
# clients logged). One line per check, `N passed, N failed`, non-zero exit
# on a failure. Dependencies are installed as by run.sh.
#
# Usage: examples/order-fulfillment/run-resilience.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Settings: ORDERS (300), INTERVAL_MS (25), LANGS ("python node").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
orders="${ORDERS:-300}"
interval_ms="${INTERVAL_MS:-25}"
langs="${LANGS:-python node}"
# The clients' keepalive timeout, the server's keepalive interval (well
# under it) and the stall (well over it).
keepalive_timeout_s=3
server_keepalive=1s
stall=8s
# Upper bound, in seconds, of each wait below; the waits poll, so this only
# ends a hang.
wait_s=60
order_topic=/event/OrderCreated__e
status_topic=/event/OrderStatusUpdated__e

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
"$bin" fault --help >/dev/null 2>&1 || setup_failed "$bin has no \`fault\` command"

work="$(mktemp -d)"
. "$here/lib.sh"

# --- helpers -------------------------------------------------------------------

# start_server DIR: a fresh server with fault injection, short keepalives, a
# metrics endpoint and the debug line that says where a managed stream
# starts; sets $server_pid, $addr and $metrics.
start_server() {
  local dir="$1"
  : >"$dir/server.log" # exists before the loop below reads it
  RUST_LOG="info,eventbus_broker::managed=debug" \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --topics "$here/topics" \
    --fault-injection --keepalive "$server_keepalive" --metrics-listen 127.0.0.1:0 \
    >"$dir/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  addr=""
  metrics=""
  for _ in $(seq 1 300); do
    # The server logs its bound addresses once it serves (metrics first).
    addr="$(sed -n 's/.*eventbus listening on \([0-9.:]*\).*/\1/p' "$dir/server.log" | head -n1)"
    metrics="$(sed -n 's/.*metrics listening on \([0-9.:]*\).*/\1/p' "$dir/server.log" | head -n1)"
    [ -n "$addr" ] && [ -n "$metrics" ] && return 0
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

eb() { "$bin" "$@" --server "$addr"; } # the CLI against this story's server

# fault NAME ARGS...: adds a rule; remembers its id as rule_NAME.
fault() {
  local name="$1" id
  shift
  id="$(eb fault add "$@")"
  printf -v "rule_$name" '%s' "$id"
  echo "   fault $id ($name): $*"
}
# claimed ID: the rule ID has been taken by a call (its `fired` count).
claimed() {
  eb fault list -o json | grep -q "\"id\":\"$1\".*\"fired\":[1-9]"
}
# injected KIND RULE: how often the server carried out RULE's fault KIND
# (pubsub_faults_injected_total{fault="KIND",rule="RULE"}).
injected() {
  python3 - "$metrics" "$1" "$2" <<'EOF'
import re, sys, urllib.request
addr, kind, rule = sys.argv[1:]
text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
n = 0
for line in text.splitlines():
    if line.startswith("pubsub_faults_injected_total{") and f'fault="{kind}"' in line \
            and f'rule="{rule}"' in line:
        n += int(float(line.rsplit(" ", 1)[1]))
print(n)
EOF
}
struck() { [ "$(injected "$1" "$2")" -ge 1 ]; } # struck KIND RULE

# count FILE PATTERN: lines of FILE matching the extended regex PATTERN.
count() {
  local n
  n="$(grep -cE "$2" "$1" 2>/dev/null)" || true
  echo "${n:-0}"
}
# answered_since LOG PATTERN N: LOG has N "published status" lines after
# its first line matching PATTERN.
answered_since() {
  [ "$(awk -v p="$2" 'seen && / published status/ { n++ } $0 ~ p { seen = 1 } END { print n + 0 }' "$1")" -ge "$3" ]
}
logged() { grep -qE "$2" "$1" 2>/dev/null; } # logged FILE PATTERN
sales_done() { ! kill -0 "$1" 2>/dev/null; }

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

start_fulfillment() { # start_fulfillment LANG DIR N: sets $fulfillment_pid
  run fulfillment "$1" --server "$addr" --keepalive-timeout "$keepalive_timeout_s" \
    2>"$2/fulfillment-$3.log" &
  fulfillment_pid=$!
  pids+=("$fulfillment_pid")
}

# expiry_cutoff DIR COMMITTED: the instant to expire the order topic before,
# so that the committed replay id (hex) and the orders after it up to the
# middle of those answered but not committed are gone, and no order without
# a status: the CreatedDate of that middle order (its commit comes after it,
# the previous order's commit before it). Fails when fewer than two orders
# were answered after the commit (then nothing tells the error-recovery
# replay from resuming after the commit).
expiry_cutoff() {
  python3 - "$1" "$2" <<'EOF'
import datetime, json, re, sys
from pathlib import Path
folder, committed = Path(sys.argv[1]), int(sys.argv[2] or "0", 16)
orders = {}
for line in (folder / "sales.out").read_text().splitlines():
    o = json.loads(line)
    if o["event"] == "order":
        orders[o["order"]] = int(o["replay_id"], 16)
logs = "".join(p.read_text() for p in folder.glob("fulfillment-*.log"))
answered = sorted(orders[n] for n in set(re.findall(r"published status \w+ for (\S+)", logs))
                  if orders.get(n, 0) > committed)
if len(answered) < 2:
    sys.exit(f"only {len(answered)} orders answered after the commit")
middle = answered[len(answered) // 2]
created = {}
for line in (folder / "orders.jsonl").read_text().splitlines():
    e = json.loads(line)
    created[int(e["replay_id"], 16)] = e["payload"]["CreatedDate"]
at = datetime.datetime.fromtimestamp(created[middle] / 1000, datetime.timezone.utc)
print(at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z", len(answered))
EOF
}

# --- the story -----------------------------------------------------------------

# story LANG: plays the faults once; returns non-zero when the story itself
# could not be played (the checks come after).
story() {
  local lang="$1" dir="$work/$1"
  mkdir -p "$dir"
  start_server "$dir" || return 1
  echo "== $lang: eventbus on $addr (--fault-injection, --keepalive $server_keepalive)," \
    "$orders orders, one every ${interval_ms} ms"

  # a. service.unavailable after some events, once on each consumer's stream.
  fault fail_fulfillment --action fail --rpc ManagedSubscribe --topic "$order_topic" \
    --after-events 40 --times 1
  fault fail_sales --action fail --rpc ManagedSubscribe --topic "$status_topic" \
    --after-events 60 --times 1
  run sales "$lang" --server "$addr" --orders "$orders" --interval-ms "$interval_ms" \
    --timeout "$wait_s" --keepalive-timeout "$keepalive_timeout_s" \
    >"$dir/sales.out" 2>"$dir/sales.log" &
  sales_pid=$!
  pids+=("$sales_pid")
  start_fulfillment "$lang" "$dir" 1
  must_live="sales:$sales_pid fulfillment:$fulfillment_pid"

  # b. Once fulfillment's first stream has taken rule a, the next stream
  # gets a dropped connection.
  wait_until "fulfillment's first stream took rule $rule_fail_fulfillment" \
    claimed "$rule_fail_fulfillment" || return 1
  fault drop --action drop --rpc ManagedSubscribe --topic "$order_topic" \
    --after-events 60 --times 1
  # c. ...and the one after it a stall of events and keepalives.
  wait_until "fulfillment's second stream took rule $rule_drop" claimed "$rule_drop" || return 1
  fault stall --action stall --rpc ManagedSubscribe --topic "$order_topic" \
    --after-events 40 --duration "$stall" --keepalives --times 1
  wait_until "fulfillment's third stream took rule $rule_stall" claimed "$rule_stall" || return 1
  wait_until "the stall began" struck stall "$rule_stall" || return 1
  wait_until "fulfillment gave up on the silent stream" \
    logged "$dir/fulfillment-1.log" 'not even a keepalive' || return 1

  # d. The stream after the stall catches up with a backlog in batches of
  # 25, committed after each batch: kill fulfillment in the middle of one.
  wait_until "fulfillment answered 11 orders after the stall" \
    answered_since "$dir/fulfillment-1.log" 'not even a keepalive' 11 || return 1
  kill_hard "$fulfillment_pid"
  must_live="sales:$sales_pid"
  local committed cutoff
  committed="$(eb managed describe Fulfillment --json | python3 -c \
    'import json, sys; print(json.load(sys.stdin)["committed_replay_id"] or "")')"
  timeout 30 "$bin" subscribe "$order_topic" --from earliest \
    --count "$(count "$dir/sales.out" '"event": ?"order"')" --server "$addr" \
    >"$dir/orders.jsonl" 2>"$dir/subscribe-orders.log" || true
  cutoff="$(expiry_cutoff "$dir" "$committed")" || return 1
  echo "   killed fulfillment; committed $committed, ${cutoff#* } orders answered after it"
  echo "   $(eb fault expire-events "$order_topic" --before "${cutoff% *}")"
  expired_at="$(count "$dir/server.log" 'managed subscription opened')"
  start_fulfillment "$lang" "$dir" 2

  # Sales ends by itself once every order has a status (or after its timeout).
  must_live="fulfillment:$fulfillment_pid"
  wait_until "sales has a status for every order" sales_done "$sales_pid" || return 1
  sales_rc=0
  wait "$sales_pid" || sales_rc=$?
  forget "$sales_pid"
  stop "$fulfillment_pid"
  timeout 30 "$bin" subscribe "$status_topic" --from earliest --count "$orders" \
    --server "$addr" >"$dir/topic.jsonl" 2>"$dir/subscribe.log" || true
  for kind_rule in "fail $rule_fail_fulfillment" "fail $rule_fail_sales" "drop $rule_drop" \
    "stall $rule_stall"; do
    echo "$kind_rule $(injected $kind_rule)"
  done >"$dir/injected.txt"
  stop "$server_pid"
}

# check LANG: prints one line per check and a summary line.
check() {
  local lang="$1" dir="$work/$1" result
  result="$(python3 - "$dir" "$orders" "${sales_rc:-1}" "${expired_at:-0}" <<'EOF'
import json, re, sys
from collections import Counter
from pathlib import Path

folder, orders, sales_rc, expired_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines = [json.loads(l) for l in (folder / "sales.out").read_text().splitlines() if l.strip()]
created = [l for l in lines if l["event"] == "order"]
updates = [l for l in lines if l["event"] == "status"]
creation = [l["order"] for l in sorted(created, key=lambda l: int(l["replay_id"], 16))]
received = [u["order"] for u in updates]
per_order = Counter(received)
topic = [json.loads(l) for l in (folder / "topic.jsonl").read_text().splitlines() if l.strip()]
in_topic = [e["payload"]["OrderNumber__c"] for e in topic]
first = (folder / "fulfillment-1.log").read_text()
second = (folder / "fulfillment-2.log").read_text()
sales_log = (folder / "sales.log").read_text()
injected = {}
for line in (folder / "injected.txt").read_text().splitlines():
    kind, rule, n = line.split()
    injected[(kind, rule)] = int(n)
rules = list(injected)
opened = [l for l in (folder / "server.log").read_text().splitlines()
          if "managed subscription opened" in l]
recovered = [l for l in opened[expired_at:] if "error-recovery replay" in l]
unavailable = "sfdc.platform.eventbus.grpc.service.unavailable"

checks = [
    ("sales exited 0", sales_rc == 0),
    (f"all {orders} orders published", len(created) == orders == len(set(creation))),
    ("no order lost: every order has a status update", set(per_order) == set(creation)),
    ("no order duplicated: exactly one status update per order",
     all(n == 1 for n in per_order.values())),
    ("status updates arrived in the order the orders were created", received == creation),
    (f"the status topic holds the same {orders} updates in the same order", in_topic == creation),
    (f"a. fail ({rules[0][1]}): fulfillment's stream ended with INTERNAL and {unavailable}, "
     "and it reconnected",
     injected[rules[0]] == 1 and re.search(r"stream failed \(.*INTERNAL.*" + re.escape(unavailable), first)),
    (f"a. fail ({rules[1][1]}): sales' status stream ended the same way and it reconnected",
     injected[rules[1]] == 1 and re.search(r"stream failed \(.*INTERNAL.*" + re.escape(unavailable), sales_log)),
    (f"b. drop ({rules[2][1]}): fulfillment's connection was closed and it reconnected",
     injected[rules[2]] == 1 and re.search(r"stream failed \(.*UNAVAILABLE", first)),
    (f"c. stall ({rules[3][1]}): fulfillment gave up on the silent stream and reconnected",
     injected[rules[3]] == 1 and "not even a keepalive" in first),
    ("d. expired position: the restarted fulfillment's stream started at the "
     "error-recovery replay", len(recovered) >= 1),
    ("d. ...and it skipped the orders it had already answered",
     "already has a status" in second),
]
for name, ok in checks:
    print(("ok   - " if ok else "FAIL - ") + name)
if any(n > 1 for n in per_order.values()):
    print("       duplicated:", [o for o, n in per_order.items() if n > 1][:10])
if set(creation) - set(per_order):
    print("       lost:", sorted(set(creation) - set(per_order))[:10])
statuses = Counter(u["status"] for u in updates)
logs = first + second
print(f"summary: {len(created)} orders, {len(updates)} status updates "
      f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}); "
      f"faults injected: {', '.join(f'{k} {r} x{n}' for (k, r), n in injected.items())}; "
      f"fulfillment reconnected {logs.count('stream failed')} times and skipped "
      f"{logs.count('already has a status')} orders delivered again; sales reconnected "
      f"{sales_log.count('stream failed')} times and skipped "
      f"{sales_log.count('delivered again after a reconnect')} updates delivered again")
EOF
)" || result+=$'\nFAIL - the checks themselves failed (see the error above)'
  sed "s/^/$lang: /" <<<"$result"
  passed=$((passed + $(grep -c '^ok' <<<"$result" || true)))
  failed=$((failed + $(grep -c '^FAIL' <<<"$result" || true)))
  if grep -q '^FAIL' <<<"$result"; then
    echo "--- $lang: logs"
    tail -n 8 "$dir"/sales.log "$dir"/fulfillment-*.log
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
    tail -n 8 "$work/$lang"/*.log
    failed=$((failed + 1))
    continue
  fi
  check "$lang"
  echo "$lang: took $((SECONDS - started)) s"
done
finish
