#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (bodies in src/fuzzing.rs).
#
#   scripts/fuzz.sh                  every target, 600 s each, one after another
#   scripts/fuzz.sh TARGET [SECONDS] one target
#   scripts/fuzz.sh all SECONDS      every target for SECONDS each
#
# Only the stable toolchain exists here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use
# the nightly-only sanitizer flags on it. Each run grows fuzz/corpus/TARGET;
# crashes land in fuzz/artifacts/TARGET. Limits, so a finding is a bug:
#   -rss_limit_mb / -malloc_limit_mb: unbounded allocation (one malloc over
#     FUZZ_MALLOC_MB, or the process over FUZZ_RSS_MB);
#   -timeout: a hang (one input running over FUZZ_TIMEOUT seconds; a normal
#     execution takes well under 10 ms).
# Afterwards shrink the corpus with `RUSTC_BOOTSTRAP=1 cargo fuzz cmin TARGET`
# (run inside fuzz/). CI does not fuzz: `cargo test --all-targets` replays
# every corpus and fuzz/regressions file (src/fuzzing.rs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

targets=(avro_validate schema_walk schema_register replay_id topics_folder json_to_avro service_stream filter_parse)
which="${1:-all}"
seconds="${2:-600}"
rss_mb="${FUZZ_RSS_MB:-2048}"
# One allocation over 256 MiB is a bug: no input of a few KiB justifies it.
malloc_mb="${FUZZ_MALLOC_MB:-256}"
timeout_s="${FUZZ_TIMEOUT:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

if [ "$which" = all ]; then
    run=("${targets[@]}")
else
    run=("$which")
fi
# Build once up front so the timed runs measure fuzzing, not compiling.
if [ "$which" = all ]; then
    nice -n 10 cargo fuzz build -O
else
    nice -n 10 cargo fuzz build -O "$which"
fi
for t in "${run[@]}"; do
    log="$root/fuzz/artifacts/$t.log"
    mkdir -p "$root/fuzz/artifacts/$t" "$root/fuzz/corpus/$t"
    echo "== $t: ${seconds}s"
    start=$(date +%s)
    status=0
    nice -n 10 cargo fuzz run -O "$t" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" \
        -malloc_limit_mb="$malloc_mb" -timeout="$timeout_s" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    end=$(date +%s)
    # libFuzzer's last status line: "#N DONE cov: .. exec/s: ..".
    done_line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    echo "$t: wall $((end - start))s, executions ${execs:-?}; ${done_line}"
    if [ "$status" -ne 0 ]; then
        echo "$t: FAILED (exit $status); see $log and fuzz/artifacts/$t/" >&2
        exit "$status"
    fi
done
