#!/usr/bin/env bash
# Single-row latency of the energy call, p50 / p99 / mean in µs: through the C ABI
# (bench/scoring/latency.c, one ddaebm_energy call per row) and through the Python binding
# (Model.energy on a (1, d) array), on default-size models for d = 32 and d = 512; then open
# time and memory through the C ABI (bench/scoring/open_memory.c).
#
#   bench/scoring/latency.sh [CALLS]     (default 200000 C calls, 50000 Python calls)
#
# Needs `cargo build --release --workspace --bins` and `cargo build --release -p ddaebm --lib`,
# a C compiler and Python with numpy.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
calls=${1:-200000}
py=${PYTHON:-$repo/target/bench-venv/bin/python}
[ -x "$py" ] || py=python3
rel=$repo/target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for prog in latency open_memory; do
    cc -O2 -I"$repo/include" "$repo/bench/scoring/$prog.c" -L"$rel" -lddaebm -lpthread \
        -Wl,-rpath,"$rel" -o "$tmp/$prog"
done
echo "| d | C ABI p50 µs | C ABI p99 µs | C ABI mean µs | Python p50 µs | Python p99 µs | Python mean µs |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for d in 32 512; do
    "$py" -c "import numpy as np; np.save('$tmp/t$d.npy', (np.random.default_rng($d).standard_normal((2000, $d)) * 2 + 1).astype(np.float32))"
    "$rel/ddaebm-train" fit --data "$tmp/t$d.npy" --out "$tmp/m$d.safetensors" --steps 50 \
        --checkpoint-every 0 2>/dev/null
    read -r c50 c99 cmean _ < <("$tmp/latency" "$tmp/m$d.safetensors" "$calls")
    read -r p50 p99 pmean < <(DDAEBM_LIBRARY="$rel/libddaebm.so" PYTHONPATH="$repo/bindings/python/src" \
        "$py" - "$tmp/m$d.safetensors" "$((calls / 4))" <<'PY'
import sys, time
import numpy as np
import ddaebm
m = ddaebm.Model(sys.argv[1])
n = int(sys.argv[2])
rows = (np.random.default_rng(0).standard_normal((1024, m.input_dim)) * 2 + 1).astype(np.float32)
for i in range(1000):
    m.energy(rows[i % 1024][None, :])
t = np.empty(n)
for i in range(n):
    x = rows[i % 1024][None, :]
    t0 = time.perf_counter()
    m.energy(x)
    t[i] = time.perf_counter() - t0
t *= 1e6
print(f"{np.percentile(t, 50):.2f} {np.percentile(t, 99):.2f} {t.mean():.2f}")
PY
)
    echo "| $d | $c50 | $c99 | $cmean | $p50 | $p99 | $pmean |"
done

echo
echo "| d | file KB | first open ms | open p50 ms | RSS added by open KB | RSS per extra scoring thread KB |"
echo "|---:|---:|---:|---:|---:|---:|"
for d in 32 512; do
    line=$("$tmp/open_memory" "$tmp/m$d.safetensors")
    v() { sed -E "s/.*$1=([^ ]+).*/\1/" <<<"$line"; }
    echo "| $d | $(v file_kb) | $(v first_open_ms) | $(v open_p50_ms) | $(v rss_open_kb) | $(v rss_thread_kb) |"
done
