# syntax=docker/dockerfile:1
#
# eventbus container image.
#
#   docker build -t eventbus:dev .
#   docker run --rm -p 7011:7011 -p 9090:9090 \
#     -v "$PWD/examples/topics:/etc/eventbus/topics:ro" -v eventbus-data:/var/lib/eventbus eventbus:dev
#
# deploy/README.md explains the layout; deploy/check.sh checks this file statically
# (binary path, ports and user against Cargo.toml and deploy/kubernetes) and with hadolint.

# ---- build stage -----------------------------------------------------------------------
# Debian bookworm, like the runtime stage, so the binary links against the same glibc and
# libstdc++. Rust 1.88 or newer (Cargo.toml rust-version); "1" follows the current release.
FROM rust:1-bookworm AS build

# The rocksdb crate compiles RocksDB's C++ (g++ ships with the image) and generates its
# bindings with libclang at build time (bindgen-runtime). protoc is vendored by the
# protoc-bin-vendored crate, so no system protobuf compiler is needed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps the context to what the build reads (manifest, lock file, build
# script, protos, sources and the target files Cargo.toml declares).
COPY . .

# Cache mounts keep the crate registry and the RocksDB objects between builds (BuildKit);
# the binary is copied out of the cached target folder so the next stage can take it,
# stripped (`install -s`): the release profile keeps line tables so `perf` and panics
# name source lines on a developer's machine, but the image ships without them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin eventbus \
    && install -D -s -m 0755 target/release/eventbus /out/eventbus

# ---- runtime stage ---------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates for outbound TLS (a JWKS or a NATS bench target); libstdc++6 because
# RocksDB is C++ (already in the slim image, named here so it never silently disappears).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and volume
# ownership (fsGroup) is predictable. The data folder is the only writable path.
RUN groupadd --system --gid 10001 eventbus \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/eventbus \
       --no-create-home --shell /usr/sbin/nologin eventbus \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/eventbus \
    && install -d -m 0755 /etc/eventbus /etc/eventbus/topics

COPY --from=build /out/eventbus /usr/local/bin/eventbus

# Settings for a container: listen on every interface, data in the volume, metrics on.
# The environment overrides the config file (defaults < file < environment < flags), so
# change these with `docker run -e` or the pod's env, not in /etc/eventbus/eventbus.toml.
# Mount the topics folder at /etc/eventbus/topics (empty in the image) and, optionally,
# a config file at /etc/eventbus/eventbus.toml (pass `--config` to use it).
ENV EVENTBUS_LISTEN=0.0.0.0:7011 \
    EVENTBUS_DATA_DIR=/var/lib/eventbus \
    EVENTBUS_METRICS_LISTEN=0.0.0.0:9090 \
    EVENTBUS_HEALTH_LISTEN=0.0.0.0:7012 \
    EVENTBUS_TOPICS=/etc/eventbus/topics

# 7011: gRPC (Pub/Sub API, Admin, health, reflection; TLS when configured).
# 7012: grpc.health.v1 only, always plaintext (Kubernetes gRPC probes). 9090: /metrics.
EXPOSE 7011 7012 9090
VOLUME ["/var/lib/eventbus"]
WORKDIR /var/lib/eventbus
USER 10001:10001

# SIGTERM starts the drain (health NOT_SERVING, drain_delay, shutdown_deadline); the
# exec form makes the server PID 1 so it receives the signal itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/eventbus"]
CMD ["serve"]
