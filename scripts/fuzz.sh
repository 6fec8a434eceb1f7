#!/usr/bin/env bash
# Fuzzes the model-file opener with cargo-fuzz (libFuzzer) for a bounded time per target.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target, default 300
#   TARGET   fuzz targets to run, default: metadata model_file (see fuzz/README.md)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz with
# `cargo install cargo-fuzz --locked` when it is missing. Builds into fuzz/target, seeds
# fuzz/corpus/<target>/ from tests/hostile_models/ (the valid tiny model and every hostile case)
# and runs each target with an RSS limit of 2 GB and a 1 GB cap on any single allocation, so an
# input that makes the opener allocate out of proportion to its size is reported as a crash.
# Crashing inputs land in fuzz/artifacts/<target>/; minimise one with
# `cd fuzz && cargo +nightly fuzz tmin <target> <file>` and add it to tests/hostile_models/
# (FOUND in tests/hostile_models.rs) once fixed.
#
# Not part of scripts/test.sh (too slow); tests/hostile_models.rs replays the corpus in
# `cargo test`. Prints one summary line per target: executions, seconds, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(metadata model_file)
fi
case $seconds in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# candle captures a backtrace in every error when RUST_BACKTRACE is set, and rendering it costs
# about 0.5 s and 300 MB per rejected file in the sanitizer build; panics keep their backtraces.
export RUST_LIB_BACKTRACE=0

cd fuzz
echo "== building fuzz targets (at ${SECONDS}s)"
cargo +nightly fuzz build

summary=()
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    # Seeds: the committed corpus (existing entries are kept, so runs build on each other).
    cp -n ../tests/hostile_models/*.safetensors "corpus/$target/" 2>/dev/null || true
    log="artifacts/$target/last-run.log"
    echo "== fuzzing $target for ${seconds}s (log: fuzz/$log)"
    start=$SECONDS
    set +e
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=60 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -dict=model.dict -print_final_stats=1 2>&1 | tee "$log" | grep -E "DONE|ERROR|SUMMARY|panicked|Test unit written"
    rc=${PIPESTATUS[0]}
    set -e
    elapsed=$((SECONDS - start))
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
    crashes=$(find "artifacts/$target" -type f ! -name '*.log' | wc -l)
    summary+=("$target: ${runs:-?} executions in ${elapsed}s (wall, with start-up), exit code $rc, $crashes file(s) in fuzz/artifacts/$target")
    if [ "$rc" -ne 0 ]; then
        status=1
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
