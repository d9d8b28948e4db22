#!/usr/bin/env bash
# e2e: starts its own server
# Real-client interop: the npm package salesforce-pubsub-api-client (pinned in
# package.json, installed with `npm ci`) against eventbus with TLS and static
# auth. It starts its own server because the check needs settings the shared
# plaintext server of scripts/e2e.sh does not have: a development TLS folder
# (the client speaks TLS only) and a tokens file with a fresh token.
#
# Usage: examples/node-interop/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"
topic=/event/Order_Event__e
# The token's tenant: the default tenant's org id, because the topics folder
# provisions the default tenant's topics (another org's tenantid sees its own,
# empty, namespace of topics).
tenant=00D000000000000EAA

setup_failed() {
  echo "$1"
  echo "0 passed, 1 failed"
  exit 1
}
[ -x "$bin" ] || setup_failed "$bin not built (cargo build first)"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || setup_failed "node and npm are required (scripts/setup.sh installs them)"

# npm ci installs exactly package-lock.json; --prefer-offline reuses npm's cache.
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

# A fresh token; the server keeps only its SHA-256.
token_out="$("$bin" token new 2>&1)" || setup_failed "eventbus token new failed: $token_out"
token="$(sed -n 's/^token: *//p' <<<"$token_out")"
hash="$(sed -n 's/^sha256: *//p' <<<"$token_out")"
[ -n "$token" ] && [ -n "$hash" ] || setup_failed "eventbus token new printed no token: $token_out"
cat >"$work/tokens.toml" <<EOF
[[tokens]]
sha256 = "$hash"
tenant = "$tenant"
principal = "node-interop"
grants = ["publish:/event/*", "subscribe:/event/*", "admin"]
EOF

eventbus_serve "$work/server.log" --listen 127.0.0.1:0 --data-dir "$work/data" --topics "$root/examples/topics" \
  --tls-self-signed "$work/tls" --auth static --auth-tokens-file "$work/tokens.toml" \
  --keepalive 300ms --tooling-listen 127.0.0.1:0
# --keepalive: the check waits for one Subscribe keepalive; 300 ms keeps that short.
# --tooling-listen: the client looks managed subscriptions up with a Tooling
# API query on its instanceUrl before ManagedSubscribe.
# Logged before the gRPC address line, so present once that is.
# The HTTP listener (--tooling-listen is its alias) serves the Tooling API query.
tooling="$http"
[ -n "$tooling" ] || { cat "$work/server.log"; setup_failed "no HTTP listener address in the log"; }

echo "== salesforce-pubsub-api-client $(node -p "require('$here/node_modules/salesforce-pubsub-api-client/package.json').version") (node $(node --version)) against eventbus on $addr (TLS, static auth), topic $topic"
status=0
# By name: the certificate is for localhost, and Node warns (DEP0123) when TLS
# is given an IP address as server name.
# The Tooling API endpoint serves the same development certificate over
# HTTPS; Node trusts its CA through NODE_EXTRA_CA_CERTS.
EVENTBUS_TOOLING_URL="https://localhost:${tooling##*:}" EVENTBUS_BIN="$bin" \
  EVENTBUS_TLS_CA="$work/tls/ca.pem" NODE_EXTRA_CA_CERTS="$work/tls/ca.pem" \
  node "$here/interop.js" "localhost:${addr##*:}" "$token" "$tenant" "$topic" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log ---"
  tail -n 40 "$work/server.log"
fi
exit "$status"
