# Sourced (not run) by the example and test scripts that start their own
# eventbus: one way to start a server and wait until it serves.
#
# eventbus_serve LOG ARG...: starts "$bin" serve ARG... with its output in
# LOG (created first, so the wait never reads a file the server has not
# opened yet) and sets `pid`; then waits, at most 30 s, for the server's
# "eventbus listening on" line and sets `addr` (gRPC) and `http` (the HTTP
# listener, empty when it is off; it is logged before the gRPC line). When
# the server exits or never serves, prints LOG and calls the script's
# `setup_failed`.
eventbus_serve() {
  local log="$1"
  shift
  : >"$log"
  "$bin" serve "$@" >"$log" 2>&1 &
  pid=$!
  addr=""
  http=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/.*eventbus listening on \([0-9.:]*\).*/\1/p' "$log" | head -n1)"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; pid=""; setup_failed "eventbus exited"; }
    sleep 0.1 # polling for readiness, bounded at 30 s
  done
  [ -n "$addr" ] || { cat "$log"; setup_failed "eventbus never became ready"; }
  http="$(sed -n 's/.*http api serving on \([0-9.:]*\).*/\1/p' "$log" | head -n1)"
}
