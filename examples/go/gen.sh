#!/usr/bin/env bash
# Generates the Go stubs of eventbus's own proto into internal/gen/ (not
# committed): eventbus.v1.PubSub (proto/eventbus/v1/pubsub_api.proto) and the
# Change Data Capture admin service (proto/eventbus/admin/v1/cdc.proto).
# protoc comes from the system (Debian: protobuf-compiler, which
# scripts/setup.sh installs); protoc-gen-go and protoc-gen-go-grpc are built
# with `go install` at the pinned versions below into a cache folder, once.
#
# Usage: examples/go/gen.sh   (prints the plugin folder it used)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# protoc-gen-go ships in google.golang.org/protobuf: the same version as go.mod's.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
tools="${EVENTBUS_GO_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/eventbus-go-tools}/go${PROTOC_GEN_GO_VERSION}-grpc${PROTOC_GEN_GO_GRPC_VERSION}"

command -v protoc >/dev/null 2>&1 || { echo "protoc is required (scripts/setup.sh installs protobuf-compiler)" >&2; exit 1; }
if [ ! -x "$tools/protoc-gen-go" ] || [ ! -x "$tools/protoc-gen-go-grpc" ]; then
  mkdir -p "$tools"
  GOBIN="$tools" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  GOBIN="$tools" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

mod=eventbus.local/examples/go
out="$here/internal/gen"
rm -rf "$out"
mkdir -p "$out"
# The proto's go_package names Salesforce's repository; M options put the
# stubs in this module instead.
PATH="$tools:$PATH" protoc -I "$root/proto" \
  --go_out="$here" --go_opt=module="$mod" \
  --go_opt="Meventbus/v1/pubsub_api.proto=$mod/internal/gen/pubsubpb" \
  --go_opt="Meventbus/admin/v1/cdc.proto=$mod/internal/gen/cdcpb" \
  --go-grpc_out="$here" --go-grpc_opt=module="$mod" \
  --go-grpc_opt="Meventbus/v1/pubsub_api.proto=$mod/internal/gen/pubsubpb" \
  --go-grpc_opt="Meventbus/admin/v1/cdc.proto=$mod/internal/gen/cdcpb" \
  eventbus/v1/pubsub_api.proto eventbus/admin/v1/cdc.proto
echo "$tools"
