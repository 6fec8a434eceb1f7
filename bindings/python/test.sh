#!/usr/bin/env bash
# Installs the Python package into a virtual environment under target/ and runs its tests
# against the shared fixture. Environment (all optional): DDAEBM_LIB_DIR (holds libddaebm.so,
# default target/debug), DDAEBM_FIXTURE_DIR (default target/bindings-fixture).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lib_dir=${DDAEBM_LIB_DIR:-$repo/target/debug}
fixture=${DDAEBM_FIXTURE_DIR:-$repo/target/bindings-fixture}
for f in "$lib_dir/libddaebm.so" "$fixture/model.safetensors"; do
    if [ ! -e "$f" ]; then
        echo "error: $f is missing: run scripts/test-bindings.sh (it builds the library and fixture)" >&2
        exit 1
    fi
done

python=${PYTHON:-python3}
venv=$repo/target/bindings/python-venv
if [ ! -x "$venv/bin/python" ]; then
    # System site-packages give the venv numpy/pytest/setuptools where the machine has them.
    "$python" -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c "import numpy, pytest, setuptools, wheel" 2>/dev/null; then
    "$venv/bin/pip" install -q "numpy>=1.21" "pytest>=7" setuptools wheel
fi
# ONNX and ONNX Runtime check the ONNX export against the library (test_onnx_export.py);
# ruff and mypy lint and type-check the package (settings in pyproject.toml).
if ! "$venv/bin/python" -c "import onnx, onnxruntime" 2>/dev/null; then
    "$venv/bin/pip" install -q "onnx>=1.14" "onnxruntime>=1.16"
fi
if [ ! -x "$venv/bin/ruff" ] || [ ! -x "$venv/bin/mypy" ]; then
    "$venv/bin/pip" install -q ruff mypy
fi
# scikit-learn: the Detector is tested inside a Pipeline (test_fit.py).
if ! "$venv/bin/python" -c "import sklearn" 2>/dev/null; then
    "$venv/bin/pip" install -q scikit-learn
fi
# A real (non-editable) install, as a user would get it.
"$venv/bin/pip" install -q --no-build-isolation --no-deps --force-reinstall "$here" 2>&1 \
    | grep -v "^\[notice\]" || true
"$venv/bin/python" -c "import ddaebm, sys; assert '/site-packages/' in ddaebm.__file__, ddaebm.__file__"

log=$repo/target/bindings/python-tests.log
set +e
# ddaebm.fit runs the trainer built beside the library (test_fit.py).
(cd "$repo/target/bindings" && DDAEBM_LIBRARY="$lib_dir/libddaebm.so" DDAEBM_FIXTURE_DIR="$fixture" \
    DDAEBM_TRAIN="${DDAEBM_TRAIN:-$lib_dir/ddaebm-train}" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -v "$here/tests") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c " PASSED" "$log" || true)
failed=$(grep -cE " (FAILED|ERROR)" "$log" || true)

# Lint (package and tests) and strict type checks (package), from the package's folder so that
# its pyproject.toml settings apply.
for check in "ruff check ." "mypy src/ddaebm"; do
    if (cd "$here" && "$venv/bin/${check%% *}" ${check#* } >"$repo/target/bindings/python-check.log" 2>&1); then
        echo "ok - $check"
        passed=$((passed + 1))
    else
        cat "$repo/target/bindings/python-check.log"
        echo "not ok - $check"
        failed=$((failed + 1))
        status=1
    fi
done

# The example, on the fixture: it must flag exactly the rows the Rust library flags.
expected="flagged $(awk '$1=="flagged"{print $2}' "$fixture/fixture.txt") of $(awk '$1=="rows"{print $2}' "$fixture/fixture.txt") rows"
# The whole output first, then its first line: piping into `head -1` would close the pipe while
# the example may still be writing, and it would fail with EPIPE depending on timing.
out=$(DDAEBM_LIBRARY="$lib_dir/libddaebm.so" "$venv/bin/python" "$repo/examples/python/screen.py" \
    "$fixture/model.safetensors" "$fixture/rows.csv" || true)
got=${out%%$'\n'*}
if [[ $got == "$expected"* ]]; then
    echo "ok - example screen.py: $got"
    passed=$((passed + 1))
else
    echo "not ok - example screen.py printed '$got', expected '$expected ...'"
    failed=$((failed + 1))
    status=1
fi
echo "Python tests: $passed passed, $failed failed"
exit "$status"
