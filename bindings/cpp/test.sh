#!/usr/bin/env bash
# Builds and runs the C++ binding tests (ctest) and the C++ example against a built libddaebm.
#
# Environment (all optional; defaults are relative to the repository root):
#   DDAEBM_LIB_DIR      directory holding libddaebm.so   (default: target/debug)
#   DDAEBM_INCLUDE_DIR  directory holding ddaebm.h       (default: include)
#   DDAEBM_FIXTURE_DIR  the bindings fixture             (default: target/bindings-fixture)
#
# Builds in target/bindings/cpp and target/bindings/cpp-example. The last line of output is
# "C++ tests: N passed, M failed"; the exit status is non-zero when anything failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

die() {
    echo "bindings/cpp/test.sh: $*" >&2
    exit 1
}

absolute_dir() {  # absolute_dir VAR DIR FILE: DIR made absolute, or die when DIR/FILE is missing
    [[ -f "$2/$3" ]] || die "$2/$3 not found ($1); run scripts/test-bindings.sh to build it"
    (cd "$2" && pwd)
}

lib_dir="$(absolute_dir DDAEBM_LIB_DIR "${DDAEBM_LIB_DIR:-$repo/target/debug}" libddaebm.so)"
include_dir="$(absolute_dir DDAEBM_INCLUDE_DIR "${DDAEBM_INCLUDE_DIR:-$repo/include}" ddaebm.h)"
fixture_dir="$(absolute_dir DDAEBM_FIXTURE_DIR \
    "${DDAEBM_FIXTURE_DIR:-$repo/target/bindings-fixture}" fixture.txt)"
export DDAEBM_FIXTURE_DIR="$fixture_dir"
for tool in cmake ctest; do
    command -v "$tool" >/dev/null || die "$tool not found; install CMake (3.16 or newer)"
done

cmake_args=(-DDDAEBM_LIBRARY_DIR="$lib_dir" -DDDAEBM_INCLUDE_DIR="$include_dir")
build="$repo/target/bindings/cpp"
example_build="$repo/target/bindings/cpp-example"
passed=0
failed=0

# Binding tests: one ctest test per case.
if cmake -S "$here" -B "$build" "${cmake_args[@]}" -DDDAEBM_FIXTURE_DIR="$fixture_dir" \
    && cmake --build "$build" -j2; then
    log="$build/ctest.log"
    (cd "$build" && ctest --output-on-failure -j2) | tee "$log" || true
    summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" || true)"
    if [[ -n "$summary" ]]; then
        read -r ctest_failed ctest_total < <(
            sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1 \2/' <<<"$summary")
        passed=$((passed + ctest_total - ctest_failed))
        failed=$((failed + ctest_failed))
    else
        echo "FAIL: ctest did not report a result" >&2
        failed=$((failed + 1))
    fi
else
    echo "FAIL: building the C++ binding tests" >&2
    failed=$((failed + 1))
fi

# The example on the fixture: its first line must report the fixture's flagged count.
fixture_value() { awk -v key="$1" '$1 == key { print $2 }' "$fixture_dir/fixture.txt"; }
threshold="$(LC_ALL=C printf '%g' "$(fixture_value threshold)")"
expected="flagged $(fixture_value flagged) of $(fixture_value rows) rows (threshold $threshold)"
if cmake -S "$repo/examples/cpp" -B "$example_build" "${cmake_args[@]}" \
    && cmake --build "$example_build" -j2; then
    if output="$("$example_build/screen" "$fixture_dir/model.safetensors" "$fixture_dir/rows.csv")" \
        && [[ "$(head -n 1 <<<"$output")" == "$expected" ]]; then
        echo "PASS example: $expected"
        passed=$((passed + 1))
    else
        echo "FAIL example: expected first line '$expected', got:" >&2
        echo "${output:-}" >&2
        failed=$((failed + 1))
    fi
else
    echo "FAIL: building the C++ example" >&2
    failed=$((failed + 1))
fi

echo "C++ tests: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
