#!/usr/bin/env bash
# e2e: starts its own server
# The npm package salesforce-pubsub-api-client (pinned in package.json) under
# an injected `service.unavailable` in the middle of a Subscribe stream:
# what it reports, whether it subscribes again by itself, and what the
# application has to do (reconnect.js). The server runs with TLS (the client
# speaks TLS only), static auth, and --fault-injection; the fault rule is
# added with `eventbus fault add` (which needs the admin grant).
#
# Usage: examples/node-interop/run-reconnect.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"
topic=/event/Order_Event__e
tenant=00D000000000000EAA # the default tenant, whose topics the folder provisions
events=10
after=4 # the stream fails after this many events

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

token_out="$("$bin" token new 2>&1)" || setup_failed "eventbus token new failed: $token_out"
token="$(sed -n 's/^token: *//p' <<<"$token_out")"
hash="$(sed -n 's/^sha256: *//p' <<<"$token_out")"
[ -n "$token" ] && [ -n "$hash" ] || setup_failed "eventbus token new printed no token: $token_out"
cat >"$work/tokens.toml" <<TOKENS
[[tokens]]
sha256 = "$hash"
tenant = "$tenant"
principal = "node-reconnect"
grants = ["publish:/event/*", "subscribe:/event/*", "admin"]
TOKENS

eventbus_serve "$work/server.log" --listen 127.0.0.1:0 --data-dir "$work/data" --topics "$root/examples/topics" \
  --tls-self-signed "$work/tls" --auth static --auth-tokens-file "$work/tokens.toml" \
  --fault-injection

# service.unavailable (INTERNAL, Salesforce's message and error-code
# trailer, the defaults of a fail rule) after $after events, once.
rule="$(EVENTBUS_ACCESS_TOKEN="$token" EVENTBUS_TENANT_ID="$tenant" "$bin" fault add \
  --action fail --rpc Subscribe --topic "$topic" --after-events "$after" --times 1 \
  --server "localhost:${addr##*:}" --tls-ca "$work/tls/ca.pem")" \
  || setup_failed "eventbus fault add failed: $rule"

echo "== salesforce-pubsub-api-client $(node -p "require('$here/node_modules/salesforce-pubsub-api-client/package.json').version") (node $(node --version)) against eventbus on $addr, fault $rule: fail Subscribe $topic after $after events"
status=0
# By name: the certificate is for localhost (Node warns when TLS is given an IP).
node "$here/reconnect.js" "localhost:${addr##*:}" "$token" "$tenant" "$topic" "$events" "$after" \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log ---"
  tail -n 30 "$work/server.log"
fi
exit "$status"
