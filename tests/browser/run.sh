#!/usr/bin/env bash
# e2e: starts its own server
# The web console in a real browser: starts eventbus (static tokens, an
# org users file with an admin user, the HTTP listener, examples/topics)
# and runs console.mjs in Debian's headless chromium through playwright-core.
# Screenshots of each page go to $SCREENSHOT_DIR (default
# target/console-screenshots).
#
# Usage: tests/browser/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"
shots="${SCREENSHOT_DIR:-$root/target/console-screenshots}"

setup_failed() {
  echo "$1"
  echo "0 passed, 1 failed"
  exit 1
}
[ -x "$bin" ] || setup_failed "$bin not built (cargo build first)"
chromium="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] || setup_failed "$chromium not found (scripts/setup.sh installs Debian's chromium)"
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

org=00D5e000000AbcdEAC
password="console-$RANDOM$RANDOM"
printf %s "$password" | "$bin" org users add --file "$work/org.toml" admin@example.com \
  --org-id "$org" --name "Ada Admin" --grants 'admin,publish:/event/*,subscribe:/event/*' >/dev/null
token="token-$RANDOM$RANDOM$RANDOM"
hash="$(printf %s "$token" | "$bin" token hash)"
cat >"$work/tokens.toml" <<EOF2
[[tokens]]
sha256 = "$hash"
tenant = "$org"
principal = "publisher"
grants = ["publish:/event/*", "subscribe:/event/*"]
EOF2

log="$work/server.log"
eventbus_serve "$log" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --data-dir "$work/data" \
  --topics "$root/examples/topics" --auth static --auth-tokens-file "$work/tokens.toml" \
  --org-users-file "$work/org.toml"
[ -n "$http" ] || { cat "$log"; setup_failed "no HTTP listener address in the log"; }

echo "== console in $("$chromium" --version 2>/dev/null | head -n1) via playwright-core $(node -p "require('$here/node_modules/playwright-core/package.json').version") at http://$http/console"
status=0
CHROMIUM="$chromium" node "$here/console.mjs" "$http" "$token" admin@example.com "$password" "$shots" \
  || status=1
if [ "$status" -ne 0 ]; then
  echo "--- server log ---"
  tail -n 40 "$log"
fi
echo "screenshots: $shots"
exit "$status"
