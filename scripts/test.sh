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
echo "== cargo test (at ${SECONDS}s)"
mkdir -p target
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
rust_status=${PIPESTATUS[0]}
set -e
rust_passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "Rust tests: $rust_passed passed, $rust_failed failed"

echo "== bindings (C, C++, Go, Python) (at ${SECONDS}s)"
set +e
scripts/test-bindings.sh
bindings_status=$?
set -e

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
