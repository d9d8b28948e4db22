#!/usr/bin/env bash
# The test command of the README: installs what a fresh Debian machine lacks,
# runs the Rust test suite (unit, property, contract and integration tests
# against a real server on 127.0.0.1:0), then the end-to-end checks with real
# clients (Python grpcio quick start, an off-the-shelf Pub/Sub client, the npm
# client, the order-fulfillment story), then the deploy checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo test --all-targets
# cargo test built target/debug/eventbus (the integration tests run it);
# a separate `cargo build` would resolve features without dev-dependencies
# and compile RocksDB once more.
scripts/e2e.sh target/debug/eventbus
# The deploy artefacts: manifests rendered and validated, the Dockerfile
# linted and cross-checked, the server on each overlay's settings, the ghz
# scenarios replayed with grpcurl.
deploy/check.sh target/debug/eventbus
