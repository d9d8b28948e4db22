#!/usr/bin/env bash
# Generates the Python gRPC stubs for eventbus.v1.PubSub from the repo's own
# proto (../../proto/eventbus/v1/pubsub_api.proto) into ./gen/.
#
# Usage: ./gen.sh            (uses python3 on PATH, or $PYTHON)
# Needs: pip install -r requirements.txt  (for grpc_tools.protoc)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_dir="$here/../../proto/eventbus/v1"
out="$here/gen"
python="${PYTHON:-python3}"

if [[ ! -f "$proto_dir/pubsub_api.proto" ]]; then
    echo "gen.sh: $proto_dir/pubsub_api.proto not found" >&2
    exit 1
fi

# Start from an empty folder so a stub from an older proto never lingers.
rm -rf "$out"
mkdir -p "$out"

# The proto imports nothing, so it is compiled from its own folder: the
# modules come out flat as gen/pubsub_api_pb2.py and gen/pubsub_api_pb2_grpc.py.
"$python" -m grpc_tools.protoc \
    --proto_path="$proto_dir" \
    --python_out="$out" \
    --pyi_out="$out" \
    --grpc_python_out="$out" \
    "$proto_dir/pubsub_api.proto"

echo "gen.sh: wrote $(cd "$out" && ls pubsub_api_pb2*.py* | tr '\n' ' ')into $out"
