#!/usr/bin/env bash
# Installs what a fresh Debian machine needs to build eventbus (the rocksdb
# crate compiles RocksDB's C++ and generates bindings with libclang) and to
# run the example clients of scripts/e2e.sh (Python venv, Node.js and npm,
# protoc for the Go example, a JDK and Maven for the Java one) and the
# console's browser tests (chromium).
set -euo pipefail
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# curl: the README's HTTP examples (login, REST), which CI runs.
command -v curl >/dev/null 2>&1 || need+=(curl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# Node.js and npm run examples/node-interop (the npm Pub/Sub client).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# nats-server (JetStream) runs the JetStream backend's tests and the
# benchmark comparison; Debian installs it in /usr/sbin.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
# Debian's chromium runs the web console's browser tests (tests/browser),
# headless, driven by playwright-core (which downloads no browser).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
# protoc generates the Go example's stubs (examples/go/gen.sh); its plugins
# come from `go install` and Go itself (go.mod's version) from the machine:
# Debian's golang package is older than grpc-go needs.
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# A JDK (17+) and Maven build and run examples/java (grpc-java); Maven
# fetches the rest from Maven Central into ~/.m2.
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
