#!/usr/bin/env bash
# Tests the Python wheel as users get it, then the Spark and Ray examples on it:
#
#  1. a fresh virtual environment (no system packages) with only the wheel installed from
#     target/ (numpy comes from PyPI) and no Rust toolchain on PATH runs ddaebm.fit, screen,
#     explain, drift and the ddaebm-train command (bindings/python/tests/wheel/installed_check.py);
#  2. a virtual environment with the wheel, pyspark and Ray Data (installed on first use, kept in
#     target/) runs examples/spark/score.py (local[2]) and examples/ray/score.py on a Parquet
#     table built from the binding fixture and compares them with single-process scoring
#     (bindings/python/tests/wheel/platforms_check.py). Spark needs Java 17 or newer.
#
# The wheel is the dev-profile one scripts/build-wheel.sh makes (rebuilt here each run). Called by
# scripts/test-bindings.sh after the binding suites; ends with "Wheel tests: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
fixture=${DDAEBM_FIXTURE_DIR:-$repo/target/bindings-fixture}
python=${PYTHON:-python3}
log=$repo/target/bindings/wheel-tests.log
mkdir -p target/bindings
: >"$log"

# Always from the current sources: a few seconds once the dev build is done.
wheel=$(scripts/build-wheel.sh --profile dev --out target/bindings/wheel | tail -1)
echo "wheel: $wheel"

# PATH without any Rust toolchain: the venv's bin/ and the system's directories.
clean_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
status=0

echo "== fresh venv with the wheel only (at ${SECONDS}s)"
fresh=$repo/target/wheel-venv
rm -rf "$fresh"
"$python" -m venv "$fresh"
"$fresh/bin/pip" install -q --disable-pip-version-check "$wheel"
if env -u DDAEBM_LIBRARY -u DDAEBM_TRAIN PATH="$fresh/bin:$clean_path" \
    "$fresh/bin/python" bindings/python/tests/wheel/installed_check.py 2>&1 | tee -a "$log"; then :; else
    status=1
fi

echo "== Spark and Ray examples (at ${SECONDS}s)"
if ! command -v java >/dev/null 2>&1; then
    echo "== installing a Java runtime for Spark"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq default-jre-headless
fi
platforms=$repo/target/platforms-venv
if ! "$platforms/bin/python" -c "import pyspark, ray.data, pyarrow, pandas" 2>/dev/null; then
    echo "== installing pyspark and Ray Data into $platforms (at ${SECONDS}s)"
    rm -rf "$platforms"
    "$python" -m venv "$platforms"
    # pandas 2: pyspark 4.x warns that it does not yet fully support pandas 3.
    "$platforms/bin/pip" install -q --disable-pip-version-check "pyspark>=3.5" "pandas>=2,<3" pyarrow "ray[data]>=2.50"
fi
"$platforms/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
if env -u DDAEBM_LIBRARY -u DDAEBM_TRAIN PATH="$platforms/bin:$PATH" RAY_USAGE_STATS_ENABLED=0 \
    "$platforms/bin/python" bindings/python/tests/wheel/platforms_check.py "$fixture" "$repo" \
    "$repo/target/platforms-work" 2>&1 | tee -a "$log"; then :; else
    status=1
fi

passed=$(grep -c "^ok - " "$log" || true)
failed=$(grep -c "^not ok - " "$log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1  # a crash before any check reported
fi
echo "Wheel tests: $passed passed, $failed failed"
exit "$status"
