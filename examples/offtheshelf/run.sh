#!/usr/bin/env bash
# Publish 3 events and replay them from EARLIEST with pysfpubsub, an
# off-the-shelf Salesforce Pub/Sub API client from PyPI, over plaintext gRPC.
#
# Usage: examples/offtheshelf/run.sh HOST:PORT [TOPIC]
#
# The server must serve the topic (default /event/Order_Event__e, from
# `--topics examples/topics`); older events on the topic do no harm. The
# package goes into a virtualenv in $VENV (default: .venv-offtheshelf next to
# this script). Ends with `N passed, N failed`; exits non-zero on a failure.
set -uo pipefail

server="${1:-127.0.0.1:7011}"
topic="${2:-/event/Order_Event__e}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$here/.venv-offtheshelf}"

setup_failed() {
    echo "$1"
    echo "0 passed, 1 failed"
    exit 1
}

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || setup_failed "cannot create a virtualenv in $venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || setup_failed "pip install -r requirements.txt failed"

echo "== pysfpubsub $("$venv/bin/python" -m pip show pysfpubsub 2>/dev/null | sed -n 's/^Version: //p') against $server, topic $topic"
exec "$venv/bin/python" "$here/pysfpubsub_replay.py" "$server" "$topic"
