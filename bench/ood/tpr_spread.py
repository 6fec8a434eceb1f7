#!/usr/bin/env python3
"""How far the measured TPR at the stored threshold can stray from the target by sampling alone.

For each task: the number of held-out calibration rows `fit` keeps (`split_indices` in
train/src/fit.rs) and the number of in-distribution test rows of the protocol (seed 0's split;
the other seeds' sizes are the same). It then simulates an ideal detector, whose calibration and
test energies are exchangeable draws from one continuous distribution (uniform, without loss of
generality), calibrated with the library's rule (the interpolated quantile at rank t(n + 1),
src/detector/calibration.rs), and reports the spread of the test acceptance rate for one seed and for the
mean of three seeds, and how often they land within target ± tolerance.

With `--results` (run.py's JSON files) it also compares the measured TPRs with that spread: each
task and seed's z = (measured − target) / simulated sd, and the sum of z² over all of them, which
for sampling noise alone is a χ² draw with as many degrees of freedom as there are runs.

    target/bench-venv/bin/python bench/ood/tpr_spread.py [--reps 20000] \
        [--results bench/ood/results-ddaebm-a.json bench/ood/results-ddaebm-b.json]

Needs numpy and scikit-learn (for the protocol's split) and ../shared/data.
"""
from __future__ import annotations

import argparse
import sys
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from run import CORE_TASKS, load_task  # noqa: E402

VAL_FRACTION = 0.1  # fit's default --val-fraction
MIN_CALIBRATION_ROWS = 100  # train/src/fit.rs


def calibration_rows(n: int) -> int:
    """Rows `fit` holds out for calibration from `n` training rows (split_indices)."""
    return max(round(n * VAL_FRACTION), min(MIN_CALIBRATION_ROWS, n // 3), 1)


def interpolated_thresholds(sorted_rows: np.ndarray, t: float) -> np.ndarray:
    """The library's threshold of each row of sorted calibration energies (src/detector/calibration.rs)."""
    n = sorted_rows.shape[1]
    q = min(max(t * (n + 1), 1.0), float(n))
    lo = int(np.floor(q))
    frac = q - lo
    below = sorted_rows[:, lo - 1]
    if frac == 0.0:
        return below
    return below + frac * (sorted_rows[:, lo] - below)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--reps", type=int, default=20000)
    ap.add_argument("--tpr", type=float, default=0.95)
    ap.add_argument("--tolerance", type=float, default=0.03)
    ap.add_argument("--results", type=Path, nargs="*", default=[],
                    help="run.py JSON files with ddaebm's tpr_at_threshold")
    args = ap.parse_args(argv)
    if not (args.data_dir / "adbench").is_dir():
        print(f"data directory {args.data_dir} (with adbench/) not found: skipped")
        return 0
    rng = np.random.default_rng(0)
    tol = args.tolerance + 1e-12
    print(f"| task | calibration rows | ID test rows | sd, one seed | P(one seed within ±{args.tolerance}) "
          f"| sd, mean of 3 | P(mean of 3 within ±{args.tolerance}) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    sd_one = {}
    for task in CORE_TASKS:
        X_train, _, y_test, _ = load_task(task, args.data_dir, 0)
        n_cal, n_test = calibration_rows(len(X_train)), int((y_test == 0).sum())
        cal = np.sort(rng.random((args.reps * 3, n_cal)), axis=1)
        accepted = rng.binomial(n_test, interpolated_thresholds(cal, args.tpr)) / n_test
        seeds = accepted.reshape(args.reps, 3)
        mean = seeds.mean(axis=1)
        one = seeds[:, 0]
        sd_one[task] = one.std()
        print(f"| {task} | {n_cal} | {n_test} | {one.std():.3f} | "
              f"{np.mean(np.abs(one - args.tpr) <= tol):.2f} | {mean.std():.3f} | "
              f"{np.mean(np.abs(mean - args.tpr) <= tol):.2f} |")
    measured = [r for path in args.results for r in json.loads(path.read_text())["results"]
                if r.get("detector") == "ddaebm" and "tpr_at_threshold" in r and r["task"] in sd_one]
    if measured:
        z = np.array([(r["tpr_at_threshold"] - args.tpr) / sd_one[r["task"]] for r in measured])
        worst = sorted(zip(np.abs(z), measured), key=lambda p: -p[0])[:3]
        print(f"\nmeasured: {len(z)} runs, mean z {z.mean():+.2f}, sum of z² {np.sum(z**2):.1f} "
              f"(χ² with {len(z)} degrees of freedom: mean {len(z)}, sd {np.sqrt(2 * len(z)):.1f}); "
              "largest |z|: " + ", ".join(f"{r['task']} seed {r['seed']} {r['tpr_at_threshold']:.3f} "
                                           f"(z {(r['tpr_at_threshold'] - args.tpr) / sd_one[r['task']]:+.2f})"
                                           for _, r in worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
