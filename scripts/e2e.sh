#!/usr/bin/env bash
# End-to-end checks with real clients. For each check under examples/*/run*.sh
# it starts the eventbus binary on a free loopback port with examples/topics
# and an empty temporary data folder, runs the check against it, and stops
# the server (by its own pid). A check whose script has the line
# `# e2e: starts its own server` is given the binary's path instead.
#
# Usage: scripts/e2e.sh [path/to/eventbus]   (default: target/debug/eventbus)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/target/debug/eventbus}"
[ -x "$bin" ] || { echo "e2e: $bin not built (cargo build first)" >&2; exit 1; }

work="$(mktemp -d)"
pid=""
stop_server() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# Starts a server on an empty data folder; sets $addr once it serves.
start_server() {
  local data="$work/data-$1" log="$work/server-$1.log"
  : >"$log" # exists before the readiness loop reads it
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --topics "$root/examples/topics" \
    >"$log" 2>&1 &
  pid=$!
  addr=""
  for _ in $(seq 1 300); do
    # The server logs its bound address once it serves.
    addr="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$log" | head -n1)"
    [ -n "$addr" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "e2e: server exited" >&2; return 1; }
    sleep 0.1 # polling for readiness, bounded at 30 s
  done
  cat "$log" >&2
  echo "e2e: server never became ready" >&2
  return 1
}

status=0
n=0
for check in "$root"/examples/*/run*.sh; do
  [ -f "$check" ] || continue
  n=$((n + 1))
  # A check marked "# e2e: starts its own server" (it needs settings such as
  # TLS or auth) gets the binary instead of a running server's address.
  if grep -q '^# e2e: starts its own server' "$check"; then
    echo "e2e: ${check#"$root"/} with $bin (its own server)"
    target="$bin"
  else
    start_server "$n"
    echo "e2e: ${check#"$root"/} against eventbus on $addr"
    target="$addr"
  fi
  # Run as a user would (./run.sh): a script that is not executable fails here.
  if ! "$check" "$target"; then
    echo "e2e: FAILED ${check#"$root"/}" >&2
    status=1
  fi
  stop_server
done
exit $status
