#!/usr/bin/env bash
# Encodes payload/order-event.json to Avro with the topic's schema and prints the
# topic's schema id and the payload in base64 (protobuf JSON's form of bytes), the
# two values the ghz scenarios carry. With --write, stores them in every scenario file.
#
# Usage: deploy/ghz/make-payload.sh path/to/eventbus [--write]
#
# The eventbus CLI does the encoding: it starts a throwaway server on 127.0.0.1 with
# examples/topics, `eventbus publish`es the event (JSON -> Avro with the topic's current
# schema), reads it back with grpcurl (Subscribe from EARLIEST: the raw bytes), then stops
# the server. The event sets CreatedDate itself, so the output is the same on every run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$here/../lib.sh"

bin="${1:?usage: make-payload.sh path/to/eventbus [--write]}"
write="${2:-}"
topic=/event/Order_Event__e

ensure_venv
tmp="$(mktemp -d)"
trap 'stop_server; rm -rf "$tmp"' EXIT
start_server "$tmp/server.log" "$bin" serve --listen 127.0.0.1:0 \
    --data-dir "$tmp/data" --topics "$repo/examples/topics"

"$bin" publish "$topic" --file "$here/payload/order-event.json" --server "$SERVER_ADDR" >/dev/null
"$DEPLOY_VENV/bin/grpcurl" -plaintext -max-time 10 \
    -d "{\"topic_name\":\"$topic\",\"replay_preset\":\"EARLIEST\",\"num_requested\":1}" \
    "$SERVER_ADDR" eventbus.v1.PubSub/Subscribe >"$tmp/fetch.json"
read -r schema_id payload < <(python3 -c '
import json, sys
resp = json.load(open(sys.argv[1]))
event = resp["events"][0]["event"]
print(event["schemaId"], event["payload"])' "$tmp/fetch.json")

echo "schema_id $schema_id"
echo "payload   $payload"
if [[ "$write" == "--write" ]]; then
    python3 "$here/ghz_tool.py" set-payload "$here"/*.json \
        --schema-id "$schema_id" --payload "$payload"
    echo "written to the scenario files in $here"
fi
