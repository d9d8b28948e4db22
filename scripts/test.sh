#!/usr/bin/env bash
# The test command of the README: installs what a fresh Debian machine lacks,
# runs the Rust test suite (unit, property, contract and integration tests
# against a real server on 127.0.0.1:0), then the end-to-end checks with real
# clients (Python grpcio quick start, an off-the-shelf Pub/Sub client, the npm
# client, the Java and Go clients, the order-fulfillment story), the web
# console in a browser, then the README's own commands
# (scripts/readme_check.py), then the deploy checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo test --all-targets
# The benchmark scripts' own summarizing logic (bench/test_*.py).
python3 -m unittest discover -s bench -p 'test_*.py'
# The backend-independent integration tests once more on the JetStream
# backend (replicas 3), against a three-node NATS cluster on loopback ports;
# the RocksDB-only ones (crash, faults, durability, graceful, hostile) stay
# out. The cluster is stopped however this script ends.
nats_dir="$(mktemp -d)"
trap 'scripts/nats-cluster.sh stop "$nats_dir"; rm -rf "$nats_dir"' EXIT
nats_urls="$(scripts/nats-cluster.sh start "$nats_dir")"
EVENTBUS_TEST_BACKEND=jetstream EVENTBUS_TEST_NATS_URL="$nats_urls" \
  cargo test --test integration -- publish:: subscribe:: managed:: admin:: topics:: auth:: cli:: tls:: cdc:: channels:: console_topic::
scripts/nats-cluster.sh stop "$nats_dir"
# cargo test built target/debug/eventbus (the integration tests run it);
# a separate `cargo build` would resolve features without dev-dependencies
# and compile RocksDB once more.
scripts/e2e.sh target/debug/eventbus
# The web console in a real browser (Debian's headless chromium driven by
# playwright-core); screenshots of each page in target/console-screenshots.
tests/browser/run.sh target/debug/eventbus
# The README's own commands, every shell block in order, as a newcomer runs
# them (the server on 127.0.0.1:7011, a NATS server on 127.0.0.1:4222).
scripts/readme_check.py target/debug/eventbus
# The deploy artefacts: manifests rendered and validated, the Dockerfile
# linted and cross-checked, the server on each overlay's settings, the ghz
# scenarios replayed with grpcurl.
deploy/check.sh target/debug/eventbus
