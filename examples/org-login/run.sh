#!/usr/bin/env bash
# e2e: starts its own server
# Real clients log in to eventbus as to a Salesforce org, unchanged but for
# their login URL: jsforce (SOAP login, REST sObject publish, composite) and
# the npm salesforce-pubsub-api-client in its username-password and
# oauth-client-credentials modes, which read the REST-published events back
# over gRPC. Twice: with `--auth none` (any credentials log in to the default
# org), then with an org users file (a user and a connected app of another
# org; wrong credentials are refused). Development TLS: the Pub/Sub client
# speaks TLS only.
#
# Usage: examples/org-login/run.sh [path/to/eventbus]
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

# Starts a server with the extra settings "$@", runs the checks against it,
# stops it. Sets status on a failure.
status=0
check_against() {
  local label="$1" strict="$2"
  shift 2
  local log="$work/server-$label.log"
  eventbus_serve "$log" --listen 127.0.0.1:0 --data-dir "$work/data-$label" \
    --topics "$root/examples/topics" --tls-self-signed "$work/tls" \
    --http-listen 127.0.0.1:0 "$@"
  [ -n "$http" ] || { cat "$log"; setup_failed "no HTTP listener address in the log"; }
  echo "== $label: jsforce $(node -p "require('$here/node_modules/jsforce/package.json').version") and salesforce-pubsub-api-client $(node -p "require('$here/node_modules/salesforce-pubsub-api-client/package.json').version") logging in at https://localhost:${http##*:}"
  # By name: the certificate is for localhost. Node trusts the development
  # CA through NODE_EXTRA_CA_CERTS (jsforce's HTTPS calls).
  if ! EVENTBUS_STRICT="$strict" NODE_EXTRA_CA_CERTS="$work/tls/ca.pem" \
    node "$here/login.js" "https://localhost:${http##*:}" "localhost:${addr##*:}" \
    /event/Order_Event__e Order_Event__e; then
    status=1
    echo "--- server log ---"
    tail -n 40 "$log"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

# 1. --auth none: any credentials log in to the default org.
check_against "auth-none" 0

# 2. An org of its own: a users file with the user and the connected app the
# checks log in as (secrets from stdin, stored hashed), and a static token
# for the same org so the topics folder provisions it.
org=00D5e000000AbcdEAC
printf %s any-password | "$bin" org users add --file "$work/org.toml" developer@example.com \
  --org-id "$org" --name "Dev Eloper" --grants 'publish:/event/*,subscribe:/event/*' >/dev/null
printf %s any-secret | "$bin" org apps add --file "$work/org.toml" eventbus-dev-app \
  --run-as developer@example.com >/dev/null
hash="$(printf %s "unused-$RANDOM$RANDOM" | "$bin" token hash)"
cat >"$work/tokens.toml" <<EOF2
[[tokens]]
sha256 = "$hash"
tenant = "$org"
principal = "ops"
grants = ["admin"]
EOF2
check_against "org-users-file" 1 --auth static --auth-tokens-file "$work/tokens.toml" \
  --org-users-file "$work/org.toml"
exit "$status"
