# Sourced (not run) by run.sh and run-resilience.sh: the processes they
# start and stop, the two languages' dependencies, and how a program of
# either language is run. Needs $here (this folder) and $work (a temporary
# folder, removed on exit) set before it is sourced; sets the EXIT trap.

pids=() # every process this script started and has not reaped; stopped on exit
forget() { # forget PID: it was reaped, so its number may be reused
  local kept=() pid
  for pid in "${pids[@]}"; do
    [ "$pid" = "$1" ] || kept+=("$pid")
  done
  pids=("${kept[@]}")
}
stop_all() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT

# --- dependencies ------------------------------------------------------------

setup_python() {
  local venv="$here/python/.venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/python/requirements.txt"
  PYTHON="$venv/bin/python" "$here/python/gen.sh" >/dev/null
}
setup_node() {
  # npm ci installs exactly package-lock.json; --prefer-offline reuses npm's cache.
  (cd "$here/node" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
}

# run PROGRAM LANG ARGS...: runs sales or fulfillment of one language. It is
# started with `&`, and exec makes the program itself the background process,
# so $! is the program's pid (and SIGKILL reaches the program).
run() {
  local program="$1" lang="$2"
  shift 2
  case "$lang" in
    python) exec "$here/python/.venv/bin/python" "$here/python/$program.py" "$@" ;;
    node) exec node "$here/node/$program.js" "$@" ;;
  esac
}

