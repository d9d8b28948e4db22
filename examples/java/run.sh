#!/usr/bin/env bash
# e2e: starts its own server
# The Java example client (grpc-java, protobuf-java, Apache Avro; messages
# generated from this repo's proto at build time) against eventbus, twice:
# plaintext, then TLS (trusting the development CA of --tls-self-signed; the
# certificate is for localhost). Each pass starts a server with an org users
# file (a user and a connected app of org 00D5e000000AbcdEAC) and an admin
# token for the same org, enables Change Data Capture on Account, then runs
#   Main run:    SOAP and OAuth login, GetTopic, GetSchema, Publish,
#                PublishStream (correlation keys), Subscribe with flow
#                control, ManagedSubscribe with a commit, change events with
#                changedFields decoded to field names;
#   Main resume: a new client process (OAuth client credentials) resumes the
#                managed subscription after the commit.
# Opt-in: IDLE_MINUTES=10 examples/java/run.sh also holds a Subscribe stream
# idle for that long over TLS (client keepAliveTime 60 s, or
# IDLE_KEEPALIVE_SECONDS) and checks it still delivers. The stream keeps one
# unit of credit, so the server sends a keepalive FetchResponse every minute;
# with IDLE_CREDIT=0 the client uses its credit up first, so nothing is sent
# on the stream and only HTTP/2 PINGs cross the connection.
# IDLE_KEEPALIVE_SECONDS=0 turns the client's keepalive off;
# SERVER_HTTP2_KEEPALIVE=0s turns the server's HTTP/2 PINGs off (default 30s).
#
# Build: Maven with the local repository ~/.m2; offline (-o) when it is warm,
# online otherwise.
#
# Usage: examples/java/run.sh [path/to/eventbus]
#   (default: $EVENTBUS_BIN, else target/debug/eventbus; built by cargo, not here)
# Ends with `N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${EVENTBUS_BIN:-$root/target/debug/eventbus}}"
. "$root/scripts/lib/serve.sh"
org=00D5e000000AbcdEAC

setup_failed() {
  echo "$1"
  echo "0 passed, 1 failed"
  exit 1
}
[ -x "$bin" ] || setup_failed "$bin not built (cargo build first)"
command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 \
  || setup_failed "java and mvn are required (scripts/setup.sh installs them)"

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

# Build (and run the unit tests): offline first, online when the local
# repository lacks something.
started=$SECONDS
if ! (cd "$here" && mvn -q -B -o package >"$work/mvn-offline.log" 2>&1); then
  echo "== maven: offline build failed, building online (filling ~/.m2)"
  (cd "$here" && mvn -q -B package >"$work/mvn.log" 2>&1) \
    || { tail -n 60 "$work/mvn.log"; setup_failed "mvn package failed"; }
fi
echo "== maven build: $((SECONDS - started)) s"
classpath="$here/target/classes:$here/target/lib/*"

# The org: a user, a connected app running as that user, and an admin token
# (for `eventbus cdc enable`); secrets from stdin, stored hashed.
printf %s any-password | "$bin" org users add --file "$work/org.toml" developer@example.com \
  --org-id "$org" --name "Dev Eloper" \
  --grants 'publish:/event/*,subscribe:/event/*,subscribe:/data/*' >/dev/null 2>&1 \
  || setup_failed "eventbus org users add failed"
printf %s any-secret | "$bin" org apps add --file "$work/org.toml" eventbus-dev-app \
  --run-as developer@example.com >/dev/null 2>&1 || setup_failed "eventbus org apps add failed"
admin_token="admin-$RANDOM$RANDOM$RANDOM"
hash="$(printf %s "$admin_token" | "$bin" token hash)"
cat >"$work/tokens.toml" <<EOF2
[[tokens]]
sha256 = "$hash"
tenant = "$org"
principal = "ops"
grants = ["admin"]
EOF2

passed=0
failed=0
# Adds the counts of a client's `N passed, N failed` line (a client that died
# before it counts as one failure).
tally() {
  local line
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n1 || true)"
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
  failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
}

# Runs the Java client in MODE with the pass's settings, printing its lines
# (but its own closing count) and adding them to the totals.
client() {
  local mode="$1" out="$work/client-$1-$2.log"
  shift 2
  local started=$SECONDS
  # Shown as it runs (the idle mode takes minutes), but for its own count.
  java -cp "$classpath" dev.eventbus.example.Main "$mode" "$@" 2>&1 | tee "$out" \
    | grep --line-buffered -vE '^[0-9]+ passed, [0-9]+ failed$' || true
  tally "$out"
  echo "   ($mode: $((SECONDS - started)) s)"
}

# Starts a server with the extra settings "$@" and runs the client against it.
pass() {
  local label="$1"
  shift
  local log="$work/server-$label.log"
  eventbus_serve "$log" --listen 127.0.0.1:0 --data-dir "$work/data-$label" \
    --topics "$root/examples/topics" --http-listen 127.0.0.1:0 \
    --auth static --auth-tokens-file "$work/tokens.toml" --org-users-file "$work/org.toml" \
    ${SERVER_HTTP2_KEEPALIVE:+--http2-keepalive "$SERVER_HTTP2_KEEPALIVE"} "$@"
  [ -n "$http" ] || { cat "$log"; setup_failed "no HTTP listener address in the log"; }

  local login grpc server ca=()
  if [ "$label" = tls ]; then
    # By name: the certificate is for localhost.
    login="https://localhost:${http##*:}"
    grpc="localhost:${addr##*:}"
    server="https://localhost:${addr##*:}"
    ca=(--tls-ca "$work/tls/ca.pem")
  else
    login="http://127.0.0.1:${http##*:}"
    grpc="127.0.0.1:${addr##*:}"
    server="$addr"
  fi
  echo "== $label: Java client, login at $login, gRPC at $grpc"
  if ! EVENTBUS_ACCESS_TOKEN="$admin_token" "$bin" cdc enable Account --server "$server" \
    --tenant-id "$org" "${ca[@]}" >/dev/null; then
    echo "FAIL - eventbus cdc enable Account"
    failed=$((failed + 1))
  fi
  local state="$work/state-$label.txt"
  client run "$label" --login-url "$login" --grpc "$grpc" "${ca[@]}" --state "$state"
  if [ -s "$state" ]; then
    client resume "$label" --login-url "$login" --grpc "$grpc" "${ca[@]}" --state "$state"
  else
    echo "FAIL - resume: the run wrote no managed subscription state"
    failed=$((failed + 1))
  fi
  if [ "$label" = tls ] && [ -n "${IDLE_MINUTES:-}" ]; then
    client idle "$label" --login-url "$login" --grpc "$grpc" "${ca[@]}" --idle-minutes "$IDLE_MINUTES" \
      --keepalive-seconds "${IDLE_KEEPALIVE_SECONDS:-60}" --idle-credit "${IDLE_CREDIT:-1}"
  fi
  if [ "$failed" -ne 0 ]; then
    echo "--- server log ($label) ---"
    tail -n 40 "$log"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

pass plaintext
pass tls --tls-self-signed "$work/tls"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
