#!/usr/bin/env bash
# Self-checking run of the Python quick-start against a running eventbus.
#
# Usage: examples/python/run_quickstart.sh HOST:PORT
#
# The server must have been started with `--topics examples/topics` on an
# empty data directory: the replay from EARLIEST expects to see exactly the
# events this script publishes. The script
#   1. makes a virtualenv in $VENV (default: .venv-quickstart next to this
#      script), installs requirements.txt and runs gen.sh;
#   2. reads the topic with GetTopic + GetSchema;
#   3. publishes 5 events with unary Publish and 5 with PublishStream;
#   4. subscribes from EARLIEST with credit 3 and count 10, and checks that
#      exactly those 10 events come back, in order, with strictly increasing
#      replay ids and the payloads that were sent, and that the server ends
#      the call with OK once the client half-closes;
#   5. subscribes again from the 5th event's replay id (CUSTOM) and checks
#      that exactly the last 5 come back.
# It ends with the line `N passed, N failed` and exits non-zero on any failure.
set -uo pipefail

server="${1:-127.0.0.1:7011}"
topic="${TOPIC:-/event/Order_Event__e}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$here/.venv-quickstart}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND and counts it as one check.
check() {
    local name="$1"
    shift
    if "$@"; then
        echo "ok   - $name"
        passed=$((passed + 1))
    else
        echo "FAIL - $name"
        failed=$((failed + 1))
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    if ((failed > 0)); then exit 1; fi
    exit 0
}

# step OUTFILE ARGS...: runs quickstart.py ARGS with stdout in
# $work/OUTFILE; shows its stderr when it fails.
step() {
    local out="$work/$1"
    shift
    if "$venv/bin/python" "$here/quickstart.py" --server "$server" "$@" >"$out" 2>"$out.err"; then
        return 0
    fi
    sed 's/^/    | /' "$out.err" >&2
    return 1
}

# expect EXPRESSION: evaluates a Python expression over the JSON-lines files
# of this run. `pub` holds the 10 published events (unary first, then
# stream), `sub` the replay from EARLIEST, `custom` the replay after the 5th
# event; each item is a dict with replay_id (hex), id and payload.
expect() {
    "$venv/bin/python" - "$work" "$1" <<'EOF'
import json, sys
from pathlib import Path

work, expression = Path(sys.argv[1]), sys.argv[2]

def load(name):
    path = work / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

def replay_ids(events):
    return [int(e["replay_id"], 16) for e in events]

def increasing(values):
    return all(a < b for a, b in zip(values, values[1:]))

def same_events(got, want):
    return [(e["id"], e["replay_id"], e["payload"]) for e in got] == \
           [(e["id"], e["replay_id"], e["payload"]) for e in want]

topic = json.loads((work / "topic.json").read_text()) if (work / "topic.json").exists() else {}
unary, stream = load("publish-unary.jsonl"), load("publish-stream.jsonl")
pub = unary + stream
sub, custom = load("subscribe-earliest.jsonl"), load("subscribe-custom.jsonl")

try:
    if eval(expression):
        sys.exit(0)
    print(f"    | not true: {expression}", file=sys.stderr)
except Exception as err:  # missing output from an earlier failed step
    print(f"    | cannot evaluate {expression}: {err!r}", file=sys.stderr)
print(f"    | published: {[(e['replay_id'], e['id'][:8]) for e in pub]}", file=sys.stderr)
print(f"    | replayed:  {[(e['replay_id'], e['id'][:8]) for e in sub]}", file=sys.stderr)
if {e["id"] for e in sub} - {e["id"] for e in pub}:
    print("    | hint: the replay holds events this run did not publish; start the server"
          " on an empty data directory", file=sys.stderr)
sys.exit(1)
EOF
}

echo "== setup: virtualenv in $venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || { echo "cannot create $venv"; failed=1; finish; }
fi
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"; then
    echo "pip install failed"; failed=1; finish
fi
if ! PYTHON="$venv/bin/python" "$here/gen.sh" >/dev/null; then
    echo "gen.sh failed"; failed=1; finish
fi

echo "== quick-start against $server, topic $topic"
check "GetTopic + GetSchema answer" step topic.json topic "$topic"
check "topic allows publish and subscribe" \
    expect 'topic["topic"]["can_publish"] and topic["topic"]["can_subscribe"]'
check "schema has CreatedDate and CreatedById" \
    expect '{"CreatedDate", "CreatedById"} <= {f["name"] for f in topic["schema"]["schema_json"]["fields"]}'

check "unary Publish of 5 events succeeds" \
    step publish-unary.jsonl publish "$topic" --count 5
check "PublishStream of 5 events succeeds" \
    step publish-stream.jsonl publish "$topic" --count 5 --stream
check "10 results, each with a replay id and its event id as correlation key" \
    expect 'len(pub) == 10 and all(e["replay_id"] and e["correlation_key"] == e["id"] for e in pub)'
check "published replay ids strictly increase" expect 'len(pub) == 10 and increasing(replay_ids(pub))'

check "Subscribe from EARLIEST (credit 3, count 10) gets 10 events" \
    step subscribe-earliest.jsonl subscribe "$topic" --from earliest --credit 3 --count 10 --timeout 60
check "the replay is exactly the 10 published events, in order, same payloads" \
    expect 'len(pub) == 10 and same_events(sub, pub)'
check "replayed replay ids strictly increase" expect 'len(sub) == 10 and increasing(replay_ids(sub))'
check "server ends the Subscribe call with OK after the client half-closes" \
    grep -q "server ended the stream: OK" "$work/subscribe-earliest.jsonl.err"

fifth="$(sed -n 5p "$work/publish-unary.jsonl" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["replay_id"])' 2>/dev/null)"
check "Subscribe after the 5th event's replay id (CUSTOM) gets 5 events" \
    step subscribe-custom.jsonl subscribe "$topic" --from "${fifth:-missing}" --credit 3 --count 5 --timeout 60
check "CUSTOM replay is exactly events 6 to 10" expect 'len(pub) == 10 and same_events(custom, pub[5:])'

finish
