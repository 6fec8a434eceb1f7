#!/usr/bin/env bash
# Checks and tests the Go binding and its example against a built libddaebm.so and the shared
# binding fixture (both made by scripts/test-bindings.sh, which calls this script).
#
# Environment (all optional; defaults are relative to the repository root):
#   DDAEBM_LIB_DIR      directory of libddaebm.so        (default: target/debug)
#   DDAEBM_INCLUDE_DIR  directory of ddaebm.h            (default: include)
#   DDAEBM_FIXTURE_DIR  the binding fixture              (default: target/bindings-fixture)
#
# Runs gofmt, go vet, go test -race -v, go test under GODEBUG=cgocheck=1 GOGC=1, and the
# example on the fixture. Ends with "Go tests: N passed, M failed": N and M count the
# "--- PASS" and "--- FAIL" lines of the -race run plus the example check; a failed gofmt,
# vet or cgocheck run counts as one failure each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

lib_dir=${DDAEBM_LIB_DIR:-$repo/target/debug}
include_dir=${DDAEBM_INCLUDE_DIR:-$repo/include}
fixture_dir=${DDAEBM_FIXTURE_DIR:-$repo/target/bindings-fixture}
for needed in "$lib_dir/libddaebm.so" "$include_dir/ddaebm.h" "$fixture_dir/fixture.txt"; do
    if [ ! -f "$needed" ]; then
        echo "error: $needed not found: run scripts/test-bindings.sh (it builds the library and the fixture)" >&2
        exit 1
    fi
done
command -v go >/dev/null 2>&1 || { echo "error: go not found: install Go 1.22 or newer" >&2; exit 1; }

lib_dir=$(cd "$lib_dir" && pwd)
include_dir=$(cd "$include_dir" && pwd)
fixture_dir=$(cd "$fixture_dir" && pwd)
export CGO_ENABLED=1
export CGO_CFLAGS="-g -O2 -I$include_dir"
export CGO_LDFLAGS="-L$lib_dir -Wl,-rpath,$lib_dir"
export DDAEBM_FIXTURE_DIR=$fixture_dir

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
example=$repo/examples/go/screen
passed=0
failed=0

echo "== gofmt -l"
unformatted=$(gofmt -l "$here" "$example")
if [ -n "$unformatted" ]; then
    echo "not gofmt-formatted:"
    echo "$unformatted"
    failed=$((failed + 1))
fi

echo "== go vet"
(cd "$here" && go vet ./...) && (cd "$example" && go vet ./...) || failed=$((failed + 1))

echo "== go test -race"
status=0
(cd "$here" && go test -race -count=1 -v ./...) 2>&1 | tee "$work/race.log" || status=$?
race_passed=$(grep -c -- '--- PASS' "$work/race.log" || true)
race_failed=$(grep -c -- '--- FAIL' "$work/race.log" || true)
passed=$((passed + race_passed))
failed=$((failed + race_failed))
# A build error, a panic or a data race can fail the run without a "--- FAIL" line.
if [ "$status" -ne 0 ] && [ "$race_failed" -eq 0 ]; then
    failed=$((failed + 1))
fi

echo "== go test with GODEBUG=cgocheck=1 GOGC=1"
(cd "$here" && GODEBUG=cgocheck=1 GOGC=1 go test -count=1 ./...) || failed=$((failed + 1))

echo "== example: screen"
rows=$(awk '$1 == "rows" {print $2}' "$fixture_dir/fixture.txt")
flagged=$(awk '$1 == "flagged" {print $2}' "$fixture_dir/fixture.txt")
want="flagged $flagged of $rows rows"
if (cd "$example" && go build -o "$work/screen" .) \
    && "$work/screen" "$fixture_dir/model.safetensors" "$fixture_dir/rows.csv" >"$work/screen.out"; then
    first=$(head -n 1 "$work/screen.out")
    echo "$first"
    if [[ "$first" == "$want "* ]]; then
        passed=$((passed + 1))
    else
        echo "FAIL: the example printed \"$first\", want \"$want (threshold ...)\""
        failed=$((failed + 1))
    fi
else
    echo "FAIL: the example did not build or run"
    failed=$((failed + 1))
fi

echo "Go tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
