#!/usr/bin/env bash
# The test command of the README: installs what a fresh Debian machine lacks,
# runs the Rust test suite (unit, property, contract and integration tests
# against a real server on 127.0.0.1:0), then the end-to-end checks with real
# clients (Python grpcio quick start, an off-the-shelf Pub/Sub client).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo test --all-targets
# cargo test built target/debug/eventbus (the integration tests run it);
# a separate `cargo build` would resolve features without dev-dependencies
# and compile RocksDB once more.
scripts/e2e.sh target/debug/eventbus
