#!/usr/bin/env bash
# The layering rule of src/lib.rs, checked by grepping imports (run by .ci/run):
# - tonic/prost only in the protocol layer (api/), the clients (cli/, bench/),
#   the composition root and transport (server.rs, transport/, tls.rs) and the
#   fuzz bodies (fuzzing.rs, test and fuzz builds only);
# - apache_avro only in schema/;
# - rocksdb only in store/ and the log's RocksDB files (log/rocks.rs,
#   log/writer.rs);
# - the engine and everything below it never use a layer above: broker/ never
#   names api, cli, bench, server or transport; auth.rs, log/, schema/ and
#   store/ never name broker either (what both need, like the default tenant,
#   lives in types.rs).
# Comments are ignored. Prints every offending line and exits 1 if any.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../src"

status=0
# forbid PATTERN ALLOWED_REGEX WHY: every code line matching PATTERN in a file
# whose path does not match ALLOWED_REGEX is an offence.
forbid() {
    local pattern="$1" allowed="$2" why="$3" hits
    hits=$(grep -rnE --include='*.rs' "$pattern" . \
        | grep -vE '^[^:]+:[0-9]+:\s*//' \
        | grep -vE "^\./($allowed)" || true)
    if [ -n "$hits" ]; then
        echo "layering: $why" >&2
        echo "$hits" >&2
        status=1
    fi
}

forbid '\b(tonic|prost)::|\buse (tonic|prost)\b' \
    'api/|cli/|bench/|server\.rs|transport/|transport\.rs|tls\.rs|fuzzing\.rs' \
    'tonic/prost outside the protocol layer, the clients and the server'
forbid '\bapache_avro\b' 'schema/' 'apache_avro outside schema/'
forbid '\brocksdb::|\buse rocksdb\b' 'store/|log/rocks\.rs|log/writer\.rs' \
    'rocksdb outside store/ and the RocksDB log backend'
forbid 'crate::(api|cli|bench|server|transport)\b' \
    '(api|cli|bench|transport)/|(server|config|fuzzing|main|lib|transport)\.rs' \
    'a lower layer uses the protocol layer, a client or the server'
forbid 'crate::broker\b' \
    '(api|cli|bench|broker|transport)/|(server|config|fuzzing|lib|transport)\.rs' \
    'auth, the log, schema or store layer uses the engine'
exit $status
