#!/usr/bin/env bash
# Builds libddaebm.so and the shared fixture (a small fitted model plus the Rust library's own
# energies, p-values, flags and samples for it), then runs the C, C++, Go and Python binding
# tests and their examples against them, then the Python wheel and the Spark and Ray examples
# (scripts/test-wheel.sh). Called by scripts/test.sh; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# --- toolchains the bindings need (present on the project's machines; installed if not) ---
need_install=()
command -v cc >/dev/null 2>&1 || need_install+=(gcc)
command -v c++ >/dev/null 2>&1 || need_install+=(g++)
command -v cmake >/dev/null 2>&1 || need_install+=(cmake)
python3 -c "import venv" 2>/dev/null || need_install+=(python3-venv)
if [ ${#need_install[@]} -gt 0 ]; then
    echo "== installing ${need_install[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "${need_install[@]}"
fi

rm -f target/bindings/summary.txt
# Go: the bindings need 1.22 or newer (Debian 12's golang-go is 1.19). Where there is no such go,
# fetch an official toolchain through the Go module proxy into target/tools (no root needed).
go_new_enough() {
    command -v go >/dev/null 2>&1 || return 1
    local v
    v=$(go env GOVERSION 2>/dev/null | sed -E 's/^go([0-9]+)\.([0-9]+).*/\1 \2/')
    [ -n "$v" ] && awk -v v="$v" 'BEGIN { split(v, a, " "); exit !(a[1] > 1 || a[2] >= 22) }'
}
if ! go_new_enough; then
    go_toolchain=v0.0.1-go1.24.13.linux-amd64
    go_root=$repo/target/tools/golang.org/toolchain@$go_toolchain
    if [ ! -x "$go_root/bin/go" ]; then
        echo "== fetching Go ($go_toolchain) from the Go module proxy"
        mkdir -p target/tools
        curl -fsSL -o target/tools/go.zip \
            "https://proxy.golang.org/golang.org/toolchain/@v/$go_toolchain.zip"
        (cd target/tools && python3 -m zipfile -e go.zip . && rm go.zip)
        chmod +x "$go_root"/bin/* "$go_root"/pkg/tool/*/*
    fi
    export PATH=$go_root/bin:$PATH
    export GOTOOLCHAIN=local
fi

echo "== building libddaebm.so (dev profile) (at ${SECONDS}s)"
# Same targets (and so the same dependency features) as `cargo test --workspace`: a plain
# `cargo build -p ddaebm` resolves features without dev-dependencies and rebuilds candle.
cargo build -q --workspace --all-targets
export DDAEBM_LIB_DIR=$repo/target/debug
export DDAEBM_INCLUDE_DIR=$repo/include
export DDAEBM_FIXTURE_DIR=$repo/target/bindings-fixture
stamp=$DDAEBM_FIXTURE_DIR/fixture.txt
if [ ! -f "$stamp" ] || [ "$DDAEBM_LIB_DIR/libddaebm.so" -nt "$stamp" ] \
    || [ xtask/src/bindings_fixture.rs -nt "$stamp" ]; then
    echo "== writing the binding fixture (at ${SECONDS}s)"
    # The binary the build above made: `cargo run -p xtask` would resolve features for that
    # package alone and rebuild candle.
    target/debug/xtask bindings-fixture "$DDAEBM_FIXTURE_DIR"
fi

mkdir -p target/bindings
summary=target/bindings/summary.txt
: >"$summary"
failed_suites=()
for lang in c cpp go python; do
    echo "== bindings/$lang (at ${SECONDS}s)"
    if bindings/$lang/test.sh 2>&1 | tee "target/bindings/$lang.log"; then :; else
        failed_suites+=("$lang")
    fi
    # Each suite ends with "<Language> tests: N passed, M failed".
    grep -E "^[A-Za-z+]+ tests: [0-9]+ passed, [0-9]+ failed" "target/bindings/$lang.log" \
        | tail -1 >>"$summary" || echo "$lang tests: 0 passed, 1 failed (no summary line)" >>"$summary"
done
# The Python wheel in a fresh venv without Rust, and the Spark and Ray examples on it.
echo "== wheel, Spark and Ray (at ${SECONDS}s)"
if scripts/test-wheel.sh 2>&1 | tee target/bindings/wheel.log; then :; else
    failed_suites+=(wheel)
fi
grep -E "^Wheel tests: [0-9]+ passed, [0-9]+ failed" target/bindings/wheel.log | tail -1 >>"$summary" \
    || echo "Wheel tests: 0 passed, 1 failed (no summary line)" >>"$summary"
echo "== binding summary (at ${SECONDS}s)"
cat "$summary"
if [ ${#failed_suites[@]} -gt 0 ]; then
    echo "binding suites failed: ${failed_suites[*]}" >&2
    exit 1
fi
