#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine. Used by .ci/run and the README.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found: install a Rust toolchain (1.85 or newer) first" >&2
    exit 1
fi
# rustfmt and clippy ship with rustup's default profile; add them where they are missing.
if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

if [ ! -d ../shared/data ]; then
    echo "note: ../shared/data is absent; tests that need the evaluation data will say they skip"
fi

echo "== cargo fmt --check (at ${SECONDS}s)"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings (at ${SECONDS}s)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test: build (at ${SECONDS}s)"
mkdir -p target
# JSON artifact lines on stdout (for the toy test's binary below), diagnostics rendered on stderr.
cargo test --workspace --no-run --message-format=json-render-diagnostics >target/test-build.json

# The 25-Gaussians quality test trains for minutes on one thread while the second core would sit
# idle: run its binary in the background, beside the other Rust tests and the binding suites, and
# count it with the Rust tests. (cargo runs test binaries one after another.)
toy_test=fit_on_25_gaussians_covers_the_modes_and_ranks_data_first
toy_bin=$(grep -Eo '"executable":"[^"]*/toy_quality-[^"]*"' target/test-build.json | tail -1 | cut -d'"' -f4)
if [ -z "$toy_bin" ] || [ ! -x "$toy_bin" ]; then
    echo "error: could not find the toy_quality test binary" >&2
    exit 1
fi
echo "== $toy_test, in the background (at ${SECONDS}s)"
# Run from the package's directory with its manifest variable, as `cargo test` would.
(cd train && CARGO_MANIFEST_DIR=$(pwd) exec "$toy_bin" --exact "$toy_test" >../target/toy-quality-output.txt 2>&1)&
toy_pid=$!
trap 'kill "$toy_pid" 2>/dev/null || true' EXIT

echo "== cargo test (at ${SECONDS}s)"
set +e
cargo test --workspace --no-fail-fast -- --skip "$toy_test" 2>&1 | tee target/test-output.txt
rust_status=${PIPESTATUS[0]}
set -e

echo "== bindings (C, C++, Go, Python) (at ${SECONDS}s)"
set +e
scripts/test-bindings.sh
bindings_status=$?
set -e

echo "== waiting for $toy_test (at ${SECONDS}s)"
set +e
wait "$toy_pid"
toy_status=$?
set -e
trap - EXIT
cat target/toy-quality-output.txt
if [ "$toy_status" -ne 0 ] || ! grep -Eq "^test result: ok\. 1 passed" target/toy-quality-output.txt; then
    rust_status=1
    # A crash before the harness's summary, or a filter that ran nothing, counts as a failure.
    grep -Eq "[1-9][0-9]* failed" target/toy-quality-output.txt \
        || echo "test result: FAILED. 0 passed; 1 failed (toy_quality: exit status $toy_status)" \
            >>target/toy-quality-output.txt
fi
cat target/test-output.txt target/toy-quality-output.txt >target/rust-test-output.txt
rust_passed=$(grep -Eo '[0-9]+ passed' target/rust-test-output.txt | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -Eo '[0-9]+ failed' target/rust-test-output.txt | awk '{s+=$1} END {print s+0}')
echo "Rust tests: $rust_passed passed, $rust_failed failed"

# Totals over Rust and every binding suite ("<Language> tests: N passed, M failed" lines).
{
    echo "Rust tests: $rust_passed passed, $rust_failed failed"
    cat target/bindings/summary.txt 2>/dev/null
} >target/test-summary.txt
echo "== summary (at ${SECONDS}s)"
cat target/test-summary.txt
passed=$(grep -Eo '[0-9]+ passed' target/test-summary.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-summary.txt | awk '{s+=$1} END {print s+0}')
echo "$passed passed, $failed failed"
if [ "$rust_status" -ne 0 ] || [ "$bindings_status" -ne 0 ]; then
    exit 1
fi
