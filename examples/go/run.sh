#!/usr/bin/env bash
# e2e: starts its own server
# The Go example: a grpc-go client (stubs generated here from ../../proto)
# logs in through the org API (SOAP, then OAuth), then checks GetTopic,
# GetSchema, Publish (Avro), PublishStream with correlation keys, Subscribe
# with flow control, ManagedSubscribe with commits and a resume from a new
# client process, and Change Data Capture events with their changedFields
# bitmap decoded to field names. Twice: against a plaintext server, then a
# TLS one (development CA from --tls-self-signed, certificate for
# `localhost`). Each server is fresh and has an org users file (a user and a
# connected app) and an admin token for that org (CDC is enabled through the
# admin API).
#
# Usage: examples/go/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
#   IDLE_MINUTES=10 examples/go/run.sh ...   also holds one Subscribe idle that
#   long on the TLS server (client keepalive 60 s, or $KEEPALIVE_TIME) and
#   checks it still works. The server reads EVENTBUS_* settings from the
#   environment, e.g. EVENTBUS_HTTP2_KEEPALIVE=0s EVENTBUS_KEEPALIVE=270s
#   leaves the client's pings as the only traffic for 270 s at a time.
# Needs Go (see go.mod) and protoc (scripts/setup.sh installs protobuf-compiler).
# The Go module and build caches (go env GOMODCACHE GOCACHE) and the protoc
# plugins (~/.cache/eventbus-go-tools) are reused between runs.
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"
idle_minutes="${IDLE_MINUTES:-0}"

setup_failed() {
  echo "$1"
  echo "0 passed, 1 failed"
  exit 1
}
[ -x "$bin" ] || setup_failed "$bin not built (cargo build first)"
command -v go >/dev/null 2>&1 || setup_failed "go is required"
command -v protoc >/dev/null 2>&1 || setup_failed "protoc is required (scripts/setup.sh installs protobuf-compiler)"
[[ "$idle_minutes" =~ ^[0-9]+$ ]] || setup_failed "IDLE_MINUTES must be a whole number of minutes"

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

passed=0
failed=0
# Records one check of this script.
check() {
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
    echo "PASS - $1"
  else
    failed=$((failed + 1))
    echo "FAIL - $1"
  fi
}

t0=$SECONDS
plugins="$("$here/gen.sh")" || setup_failed "stub generation failed (gen.sh)"
t_gen=$((SECONDS - t0))
(cd "$here" && go build -trimpath -o "$work/goclient" .) || setup_failed "go build failed"
t_build=$((SECONDS - t0 - t_gen))
echo "== $(go version | cut -d' ' -f3), protoc $(protoc --version | cut -d' ' -f2), plugins in $plugins; generate ${t_gen}s, build ${t_build}s"
unit="$(cd "$here" && go test ./... 2>&1)" && rc=0 || rc=$?
echo "$unit" | grep -v 'no test files' || true
check "go test: bitmap decoder unit tests" "$rc"

# An org of its own: the user and the connected app the example logs in as
# (secrets from stdin, stored hashed) and an admin token for the same org,
# which also makes the topics folder provision the org.
org=00D5e000000GoExAAA
password="go-example-password"
secret="go-example-secret"
admin_token="go-admin-$RANDOM$RANDOM$RANDOM"
printf %s "$password" | "$bin" org users add --file "$work/org.toml" developer@example.com \
  --org-id "$org" --name "Go Developer" --grants 'publish:/event/*,subscribe:/event/*,subscribe:/data/*' >/dev/null
printf %s "$secret" | "$bin" org apps add --file "$work/org.toml" eventbus-go-example \
  --run-as developer@example.com >/dev/null
hash="$(printf %s "$admin_token" | "$bin" token hash)"
cat >"$work/tokens.toml" <<EOF2
[[tokens]]
sha256 = "$hash"
tenant = "$org"
principal = "go-example-admin"
grants = ["admin"]
EOF2

# Starts a server (TLS when $2 is 1), runs the example against it, stops it.
run_against() {
  local label="$1" tls="$2"
  local log="$work/server-$label.log"
  local extra=()
  [ "$tls" = 1 ] && extra=(--tls-self-signed "$work/tls")
  eventbus_serve "$log" --listen 127.0.0.1:0 --data-dir "$work/data-$label" \
    --topics "$root/examples/topics" --http-listen 127.0.0.1:0 \
    --auth static --auth-tokens-file "$work/tokens.toml" --org-users-file "$work/org.toml" \
    "${extra[@]}"
  [ -n "$http" ] || { cat "$log"; setup_failed "no HTTP listener address in the log"; }
  local args=(-label "$label" -password "$password" -client-secret "$secret" -keepalive-time "${KEEPALIVE_TIME:-60s}")
  local endpoints
  if [ "$tls" = 1 ]; then
    # By name: the certificate is for localhost.
    endpoints=(-login "https://localhost:${http##*:}" -grpc "localhost:${addr##*:}" -ca "$work/tls/ca.pem")
    [ "$idle_minutes" -gt 0 ] && endpoints+=(-idle "${idle_minutes}m")
  else
    endpoints=(-login "http://${http}" -grpc "${addr}")
  fi
  echo "== $label: goclient ${endpoints[*]}"
  local out="$work/out-$label.txt" start=$SECONDS rc=0
  EVENTBUS_ADMIN_TOKEN="$admin_token" "$work/goclient" run "${args[@]}" "${endpoints[@]}" | tee "$out" || rc=$?
  passed=$((passed + $(grep -c '^PASS' "$out" || true)))
  failed=$((failed + $(grep -c '^FAIL' "$out" || true)))
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$out"; then
    failed=$((failed + 1))
    echo "FAIL - $label: goclient exited $rc without a FAIL line"
  fi
  echo "== $label: ran in $((SECONDS - start))s"
  if [ "$rc" -ne 0 ]; then
    echo "--- server log ---"
    tail -n 40 "$log"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

run_against plaintext 0
run_against tls 1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
