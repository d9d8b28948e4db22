#!/usr/bin/env bash
# Generates the Python gRPC modules for eventbus.v1.PubSub and
# eventbus.admin.v1.Admin from the repo's own protos into ./gen/.
#
# Usage: ./gen.sh            (uses python3 on PATH, or $PYTHON)
# Needs: pip install -r requirements.txt  (for grpc_tools.protoc)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_root="$here/../../../proto"
out="$here/gen"
python="${PYTHON:-python3}"

# Start from an empty folder so a module from an older proto never lingers.
rm -rf "$out"
mkdir -p "$out"

# Each proto is compiled from its own folder, so the modules come out flat:
# gen/pubsub_api_pb2*.py and gen/admin_pb2*.py.
for proto in "$proto_root/eventbus/v1/pubsub_api.proto" "$proto_root/eventbus/admin/v1/admin.proto"; do
    "$python" -m grpc_tools.protoc \
        --proto_path="$(dirname "$proto")" \
        --python_out="$out" \
        --grpc_python_out="$out" \
        "$proto"
done
echo "gen.sh: wrote $(cd "$out" && ls ./*_pb2*.py | tr '\n' ' ')into $out"
