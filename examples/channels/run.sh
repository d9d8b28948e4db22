#!/usr/bin/env bash
# e2e: starts its own server
# Custom channels end to end with a real client: channels.js defines
# filtered channels over the Tooling REST API as a Salesforce admin tool
# would (PlatformEventChannel and PlatformEventChannelMember), and the npm
# salesforce-pubsub-api-client, logged in to eventbus as to a Salesforce org,
# subscribes to them and must receive exactly the events that pass each
# filter: an event channel over /event/Order_Event__e (two channels with their
# own filters, a refused filter, a filter changed with PATCH) and a data
# channel over AccountChangeEvent with a changeType filter and an enriched
# field. Development TLS: the Pub/Sub client speaks TLS only. A one-second
# keepalive lets the script see a subscription caught up with its channel.
#
# Usage: examples/channels/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"

setup_failed() {
  echo "$1"
  echo "0 passed, 1 failed"
  exit 1
}
[ -x "$bin" ] || setup_failed "$bin not built (cargo build first)"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || setup_failed "node and npm are required (scripts/setup.sh installs them)"
(cd "$here" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) \
  || setup_failed "npm ci failed"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log="$work/server.log"
# examples/topics provisions /event/Order_Event__e, the event channel's source.
eventbus_serve "$log" --listen 127.0.0.1:0 --data-dir "$work/data" --tls-self-signed "$work/tls" \
  --http-listen 127.0.0.1:0 --topics "$root/examples/topics" --keepalive 1s
[ -n "$http" ] || { cat "$log"; setup_failed "no HTTP listener address in the log"; }

echo "== salesforce-pubsub-api-client $(node -p "require('$here/node_modules/salesforce-pubsub-api-client/package.json').version") reading custom channels, logging in at https://localhost:${http##*:}"
# Node's fetch and the client's SOAP login trust the development CA through
# NODE_EXTRA_CA_CERTS (by name: the certificate is for localhost).
status=0
NODE_EXTRA_CA_CERTS="$work/tls/ca.pem" \
  node "$here/channels.js" "https://localhost:${http##*:}" "localhost:${addr##*:}" \
  || status=1
if [ "$status" -ne 0 ]; then
  echo "--- server log ---"
  tail -n 40 "$log"
fi
exit "$status"
