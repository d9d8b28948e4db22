#!/usr/bin/env bash
# Checks the ghz scenarios in deploy/ghz against a real server, without ghz (a Go tool
# this project cannot install): each scenario is replayed once with grpcurl, through
# server reflection, with the scenario's own metadata and request data (ghz template
# actions rendered by ghz_tool.py the way ghz renders them), and half-closing the stream
# after the last request exactly as ghz does. Checked:
#   - every scenario file uses only ghz config keys, reflection, the auth headers, and
#     the schema id and Avro payload that make-payload.sh produces today;
#   - Publish: one result per event, each with a replay id, no error;
#   - PublishStream: one response per request, distinct event ids, then status OK;
#   - Subscribe: the FetchRequest, then half-close: the server ends the stream with OK
#     well within the scenario's timeout (otherwise every ghz stream would time out).
# Each scenario runs against `eventbus serve --topics examples/topics` (the README's
# server, auth none, the placeholder token ignored) and against the same server with
# `--auth static` and a real token in place of the placeholder.
#
# Usage: deploy/ghz/check.sh path/to/eventbus
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$here/../lib.sh"

bin="$(cd "$(dirname "${1:?usage: check.sh path/to/eventbus}")" && pwd)/$(basename "$1")"
ensure_venv
grpcurl="$DEPLOY_VENV/bin/grpcurl"
tool=(python3 "$here/ghz_tool.py")
tmp="$(mktemp -d)"
trap 'stop_server; rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { echo "ok   - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; [[ -z "${2:-}" ]] || sed 's/^/    | /' <<<"$2"; failed=$((failed + 1)); }

# 1. The scenario files themselves, against what the CLI encodes today.
if out="$("$here/make-payload.sh" "$bin" 2>&1)"; then
    schema_id="$(awk '$1 == "schema_id" {print $2}' <<<"$out")"
    payload="$(awk '$1 == "payload" {print $2}' <<<"$out")"
    ok "make-payload.sh encodes the example event (schema $schema_id)"
else
    fail "make-payload.sh" "$out"
    echo "$passed passed, $failed failed"
    exit 1
fi
if out="$("${tool[@]}" validate "$here"/*.json --schema-id "$schema_id" --payload "$payload" 2>&1)"; then
    ok "scenario files: ghz keys, reflection, auth metadata, current schema id and payload"
else
    fail "scenario files are stale or malformed (fix, or run make-payload.sh BIN --write)" "$out"
fi

# replay CONFIG TOKEN: runs one ghz call of CONFIG with grpcurl; TOKEN, when not empty,
# replaces the accesstoken placeholder. Prints grpcurl's output; returns its status.
replay() {
    local config="$1" token="$2" timeout call
    local -a headers=()
    while IFS= read -r line; do
        if [[ -n "$token" && "$line" == accesstoken:* ]]; then line="accesstoken: $token"; fi
        headers+=(-H "$line")
    done < <("${tool[@]}" metadata "$config")
    call="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["call"])' "$config")"
    timeout="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("timeout","20s").rstrip("s"))' "$config")"
    "${tool[@]}" render "$config" >"$tmp/requests.jsonl"
    # -d @ reads the requests from stdin and half-closes after the last one, as ghz does.
    "$grpcurl" -plaintext -max-time "$timeout" "${headers[@]}" -d @ \
        "$SERVER_ADDR" "$call" <"$tmp/requests.jsonl"
}

# expect CONFIG OUTPUT: checks grpcurl's OUTPUT (concatenated JSON responses) against
# the requests in $tmp/requests.jsonl, per call type. Prints what is wrong, if anything.
expect() {
    python3 - "$1" "$tmp/requests.jsonl" "$2" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
requests = [json.loads(line) for line in open(sys.argv[2])]
text, decoder, responses, at = sys.argv[3], json.JSONDecoder(), [], 0
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    obj, at = decoder.raw_decode(text, at)
    responses.append(obj)
call = config["call"].rsplit("/", 1)[1]
problems = []
if call in ("Publish", "PublishStream"):
    if len(responses) != len(requests):
        problems.append(f"{len(requests)} requests but {len(responses)} responses")
    sent = [e["id"] for r in requests for e in r["events"]]
    if len(set(sent)) != len(sent):
        problems.append("the rendered event ids repeat")
    results = [res for r in responses for res in r.get("results", [])]
    got = [res.get("correlationKey") for res in results]
    if got != sent:
        problems.append(f"results name {len(got)} events, not the {len(sent)} sent, in order")
    for res in results:
        if "error" in res or not res.get("replayId"):
            problems.append(f"result without a replay id or with an error: {res}")
            break
    print(f"{len(results)} events acknowledged in {len(responses)} responses", file=sys.stderr)
else:
    events = [e for r in responses for e in r.get("events", [])]
    wanted = requests[0]["num_requested"]
    if not 1 <= len(events) <= wanted:
        problems.append(f"{len(events)} events delivered, expected 1..{wanted}")
    print(f"{len(events)} events delivered in {len(responses)} responses", file=sys.stderr)
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
}

# run_scenarios LABEL TOKEN: replays every scenario (publishers first, so Subscribe from
# EARLIEST has events to deliver) against the running server.
run_scenarios() {
    local label="$1" token="$2" config name out started elapsed detail
    for name in publish publish-stream subscribe; do
        config="$here/$name.json"
        started=$SECONDS
        if ! out="$(replay "$config" "$token" 2>&1)"; then
            fail "$label: $name.json: the call did not end with status OK" "$out"
            continue
        fi
        elapsed=$((SECONDS - started))
        if detail="$(expect "$config" "$out" 2>&1)"; then
            ok "$label: $name.json ($(tail -n 1 <<<"$detail"), status OK after ${elapsed}s)"
        else
            fail "$label: $name.json" "$detail"
        fi
    done
}

# 2. The README's server: auth none, so the placeholder token is ignored.
start_server "$tmp/none.log" "$bin" serve --listen 127.0.0.1:0 \
    --data-dir "$tmp/data-none" --topics "$repo/examples/topics"
run_scenarios "auth none" ""
stop_server

# 3. With --auth static: the scenarios' metadata is what a real deployment needs once the
# placeholder is replaced by a token (`ghz --config X -m '{"accesstoken":"..."}'`).
read -r token hash < <("$bin" token new | awk '$1 == "token:" {t=$2} $1 == "sha256:" {h=$2} END {print t, h}')
cat >"$tmp/tokens.toml" <<EOF
[[tokens]]
sha256 = "$hash"
tenant = "00D000000000000EAA"
principal = "loadtest"
grants = ["publish:/event/*", "subscribe:/event/*"]
EOF
start_server "$tmp/static.log" "$bin" serve --listen 127.0.0.1:0 \
    --data-dir "$tmp/data-static" --topics "$repo/examples/topics" \
    --auth static --auth-tokens-file "$tmp/tokens.toml"
run_scenarios "auth static" "$token"
if out="$(replay "$here/publish.json" "" 2>&1)"; then
    fail "auth static: the placeholder token must be refused" "$out"
elif grep -q "Unauthenticated" <<<"$out"; then
    ok "auth static: the placeholder token is refused with UNAUTHENTICATED"
else
    fail "auth static: the placeholder token: unexpected error" "$out"
fi
stop_server

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
