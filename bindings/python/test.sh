#!/usr/bin/env bash
# Builds the Python package's wheel (scripts/build-wheel.sh, from the dev-profile library and
# trainer in target/debug), installs that wheel into a virtual environment under target/ and
# runs the tests against the installed package, which loads its bundled library and trainer
# (no DDAEBM_LIBRARY, no DDAEBM_TRAIN). Environment (optional): DDAEBM_FIXTURE_DIR (default
# target/bindings-fixture).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lib_dir=$repo/target/debug
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
# The wheel a user would install, not the source tree.
wheel=$("$repo/scripts/build-wheel.sh" --profile dev --out "$repo/target/bindings/wheel" | tail -1)
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
unset DDAEBM_LIBRARY DDAEBM_TRAIN
"$venv/bin/python" -c "import ddaebm; assert '/site-packages/' in ddaebm.__file__, ddaebm.__file__"

log=$repo/target/bindings/python-tests.log
set +e
# The venv's bin/ first on PATH, as an activated venv has it: the ddaebm-train command is there.
(cd "$repo/target/bindings" && DDAEBM_FIXTURE_DIR="$fixture" PATH="$venv/bin:$PATH" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -v "$here/tests") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c " PASSED" "$log" || true)
failed=$(grep -cE " (FAILED|ERROR)" "$log" || true)

# Lint (package and tests) and strict type checks (package), from the package's folder so that
# its pyproject.toml settings apply.
for check in "ruff check . ../../examples" "mypy src/ddaebm"; do
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
out=$("$venv/bin/python" "$repo/examples/python/screen.py" \
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
