#!/usr/bin/env bash
# The digits image benchmark (bench/digits/README.md): fits the default image detector on
# digits 0–4 of ../shared/data/digits.npz for seeds 0 1 2 (two at a time, one thread each) and
# prints one JSON report per seed plus the mean of each number.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=../shared/data/digits.npz
if [ ! -f "$data" ]; then
    echo "skipping: $data is absent" >&2
    exit 0
fi
cargo build --release -q -p ddaebm-train --example digits
out=target/bench-digits
mkdir -p "$out"
for seed in ${SEEDS:-0 1 2}; do
    RAYON_NUM_THREADS=1 target/release/examples/digits --seed "$seed" --out "$out/seed$seed" \
        >"$out/seed$seed.json" &
    # Two runs at a time on a 2-core machine.
    [ "$(jobs -r | wc -l)" -ge 2 ] && wait -n
done
wait
python3 - "$out" <<'PY'
import glob, json, sys
reports = [json.load(open(p)) for p in sorted(glob.glob(f"{sys.argv[1]}/seed*.json"))]
def flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float)):
            yield f"{prefix}{k}", v
for r in reports:
    print(json.dumps(r))
keys = dict(flat(reports[0])).keys()
mean = {k: sum(dict(flat(r))[k] for r in reports) / len(reports) for k in keys}
print("mean over seeds:", json.dumps(mean, indent=1))
PY
