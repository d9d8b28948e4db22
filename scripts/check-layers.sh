#!/usr/bin/env bash
# The layering rule of the workspace (README "Architecture"), run by .ci/run:
# the crate graph and where tonic/prost, apache-avro, rocksdb and async-nats
# may be listed; no cycle between the top-level modules of any crate; the
# module rules inside the root crate. See scripts/layers.py for the rules.
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/layers.py"
