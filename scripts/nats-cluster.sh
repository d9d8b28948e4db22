#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback ports, for the JetStream
# backend's test run (scripts/test.sh). Each node gets a temporary store.
#
#   scripts/nats-cluster.sh start DIR   starts it; prints the client URLs,
#                                       comma-separated, once every node knows
#                                       the JetStream metadata leader
#   scripts/nats-cluster.sh stop DIR    stops the nodes it started (by pid)
#
# DIR holds the stores, logs and pid files. Ports are picked free at start.
set -euo pipefail
cmd="${1:?usage: nats-cluster.sh start|stop DIR}"
dir="${2:?usage: nats-cluster.sh start|stop DIR}"
bin="$(command -v nats-server || true)"
[ -n "$bin" ] || bin=/usr/sbin/nats-server
[ -x "$bin" ] || { echo "nats-cluster: nats-server not installed (scripts/setup.sh installs it)" >&2; exit 1; }

case "$cmd" in
start)
  mkdir -p "$dir"
  # Six free loopback ports: three for clients, three for routes.
  read -r -a ports <<<"$(python3 -c '
import socket
held = [socket.socket() for _ in range(6)]
for s in held: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))')"
  urls=()
  for i in 0 1 2; do
    routes=()
    for j in 0 1 2; do
      [ "$j" = "$i" ] || routes+=("nats://127.0.0.1:${ports[$((3 + j))]}")
    done
    mkdir -p "$dir/n$i"
    "$bin" --jetstream --store_dir "$dir/n$i" --addr 127.0.0.1 --port "${ports[$i]}" \
      --cluster "nats://127.0.0.1:${ports[$((3 + i))]}" \
      --routes "$(IFS=,; echo "${routes[*]}")" \
      --cluster_name eventbus-ci --server_name "n$i" >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
    urls+=("nats://127.0.0.1:${ports[$i]}")
  done
  for i in 0 1 2; do
    for _ in $(seq 1 300); do
      grep -q "metadata leader" "$dir/n$i.log" && break
      kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null || { cat "$dir/n$i.log" >&2; exit 1; }
      sleep 0.1 # polling the node's log for readiness, bounded at 30 s
    done
    grep -q "metadata leader" "$dir/n$i.log" || { cat "$dir/n$i.log" >&2; echo "nats-cluster: n$i never ready" >&2; exit 1; }
  done
  (IFS=,; echo "${urls[*]}")
  ;;
stop)
  for f in "$dir"/n*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    kill -TERM "$pid" 2>/dev/null || true
    # Waits for the node to exit (it is not our child when started by another shell).
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  ;;
*)
  echo "usage: nats-cluster.sh start|stop DIR" >&2
  exit 2
  ;;
esac
