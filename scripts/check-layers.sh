#!/usr/bin/env bash
# The layering rule of src/lib.rs, checked by grepping imports (run by .ci/run):
# - tonic/prost only in the protocol layer (api/), the clients (cli/, bench/,
#   client.rs), the composition root and transport (server.rs,
#   health_listener.rs, transport/, tls.rs) and the fuzz bodies (fuzzing.rs,
#   test and fuzz builds only);
# - apache_avro only in schema/;
# - rocksdb only in store/ and the log's RocksDB files (log/rocks.rs,
#   log/writer.rs);
# - the engine and everything below it never use a layer above: broker/ never
#   names api, cli, bench, server or transport; auth.rs, log/, schema/ and
#   store/ never name broker either (what both need, like the default tenant,
#   lives in types.rs);
# - the command line and the clients form no cycle: config.rs (settings) never
#   names the command line (command_line.rs) or a client; cli/ never names the
#   load generator, the engine, the log or storage, bench/ never the client
#   commands, client.rs (what both share) neither of them; and the files of
#   cli/ and bench/ never import each other in a circle.
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
    'api/|cli/|bench/|client\.rs|server\.rs|health_listener\.rs|transport/|transport\.rs|tls\.rs|fuzzing\.rs' \
    'tonic/prost outside the protocol layer, the clients and the server'
forbid '\bapache_avro\b' 'schema/' 'apache_avro outside schema/'
forbid '\brocksdb::|\buse rocksdb\b' 'store/|log/rocks\.rs|log/writer\.rs' \
    'rocksdb outside store/ and the RocksDB log backend'
forbid 'crate::(api|cli|bench|server|transport)\b' \
    '(api|cli|bench|transport)/|(server|config|fuzzing|main|lib|transport|command_line|health_listener)\.rs' \
    'a lower layer uses the protocol layer, a client or the server'
forbid 'crate::broker\b' \
    '(api|cli|bench|broker|transport)/|(server|config|fuzzing|lib|transport)\.rs' \
    'auth, the log, schema or store layer uses the engine'

# forbid_in PATTERN PATHS_REGEX WHY: every code line matching PATTERN in a
# file whose path matches PATHS_REGEX is an offence.
forbid_in() {
    local pattern="$1" paths="$2" why="$3" hits
    hits=$(grep -rnE --include='*.rs' "$pattern" . \
        | grep -vE '^[^:]+:[0-9]+:\s*//' \
        | grep -E "^\./($paths)" || true)
    if [ -n "$hits" ]; then
        echo "layering: $why" >&2
        echo "$hits" >&2
        status=1
    fi
}

forbid_in 'crate::(cli|bench|client|command_line|server)\b' 'config\.rs' \
    'the settings name the command line, a client or the server'
forbid_in 'crate::(bench|broker|log|store|server|command_line)\b' 'cli/' \
    'the client commands name the load generator, the engine, the log, storage or the command line'
forbid_in 'crate::(cli|broker|log|store|server|command_line)\b' 'bench/' \
    'the load generator names the client commands, the engine, the log, storage or the command line'
forbid_in 'crate::(cli|bench|broker|log|store|server|command_line)\b' 'client\.rs' \
    'the shared client plumbing names a client, the engine, the log, storage or the command line'
forbid_in 'crate::(api|broker|transport|server)\b' 'telemetry/http\.rs' \
    'the metrics endpoint names the protocol layer, the engine, the transport or the server'

# no_file_cycles DIR: the files of DIR (mod.rs aside: it declares and
# re-exports) may use each other (`super::wire::channel`, `use super::{wire,
# X}`) only without a circle. Edges go to tsort, which reports a loop.
no_file_cycles() {
    local dir="$1" f g from to edges="" loop
    for f in "$dir"/*.rs; do
        from=$(basename "$f" .rs)
        [ "$from" = mod ] && continue
        # The file's code on one line, comments dropped, so multi-line
        # `use super::{...};` lists are seen whole.
        local code
        code=$(grep -vE '^\s*//' "$f" | sed 's://.*$::' | tr '\n' ' ')
        for g in "$dir"/*.rs; do
            to=$(basename "$g" .rs)
            if [ "$to" = mod ] || [ "$to" = "$from" ]; then continue; fi
            if grep -qE "\b(super|crate::$dir)::(\{[^;]*[{, ])?$to\b" <<<"$code"; then
                edges+="$from $to"$'\n'
            fi
        done
    done
    if ! loop=$(printf '%s' "$edges" | tsort 2>&1 >/dev/null) || [ -n "$loop" ]; then
        echo "layering: the files of $dir/ import each other in a circle" >&2
        echo "$loop" >&2
        printf '%s' "$edges" | sed 's/ / -> /; s/^/  /' >&2
        status=1
    fi
}

no_file_cycles cli
no_file_cycles bench
exit $status
