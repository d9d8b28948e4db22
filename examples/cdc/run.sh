#!/usr/bin/env bash
# e2e: starts its own server
# Change Data Capture end to end with a real client: the npm
# salesforce-pubsub-api-client logs in to eventbus as to a Salesforce org and
# subscribes to /data/AccountChangeEvent and /data/ChangeEvents while cdc.js
# changes Account and Contact records over the REST sObject API; it checks
# each event as the client decodes it (changeType, recordIds, values, and the
# field names the client reads from the changedFields / nulledFields bitmaps).
# The server starts its commit numbers above 2^53, which a JavaScript number
# cannot hold: the client must yield them exactly. Development TLS: the
# Pub/Sub client speaks TLS only.
#
# Usage: examples/cdc/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"
# 2^53 + 8, above Number.MAX_SAFE_INTEGER. A double holds this one exactly
# but not the odd ones after it (one per later transaction): cdc.js checks
# that the client yields all of them exactly.
first_commit=9007199254741000

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
eventbus_serve "$log" --listen 127.0.0.1:0 --data-dir "$work/data" --tls-self-signed "$work/tls" \
  --http-listen 127.0.0.1:0 --cdc-first-commit-number "$first_commit"
[ -n "$http" ] || { cat "$log"; setup_failed "no HTTP listener address in the log"; }

# Select both objects on the ChangeEvents channel (by name: the certificate is
# for localhost).
for object in Account Contact; do
  "$bin" cdc enable "$object" --server "https://localhost:${addr##*:}" --tls-ca "$work/tls/ca.pem" \
    || { tail -n 40 "$log"; setup_failed "eventbus cdc enable $object failed"; }
done

echo "== salesforce-pubsub-api-client $(node -p "require('$here/node_modules/salesforce-pubsub-api-client/package.json').version") reading change events, logging in at https://localhost:${http##*:}"
# Node's fetch and the client's SOAP login trust the development CA through
# NODE_EXTRA_CA_CERTS.
status=0
NODE_EXTRA_CA_CERTS="$work/tls/ca.pem" \
  node "$here/cdc.js" "https://localhost:${http##*:}" "localhost:${addr##*:}" "$first_commit" \
  || status=1
if [ "$status" -ne 0 ]; then
  echo "--- server log ---"
  tail -n 40 "$log"
fi
exit "$status"
