#!/usr/bin/env python3
"""Markdown tables from one or more JSON files written by run.py --out-json.

Usage: python bench/ood/report.py results-baselines.json [results-ddaebm.json ...] [-o results.md]
Later files win where the same (task, seed, detector) appears twice, so a ddaebm run can be
merged with the stored baseline run.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

HEADING = "## OOD detection on ADBench + CIFAR-10→SVHN (bench/ood)"
DETECTOR_ORDER = ["iforest", "ecod", "knn", "lof", "ocsvm", "ddaebm"]
DETECTOR_LABEL = {"iforest": "IForest", "ecod": "ECOD", "knn": "KNN", "lof": "LOF",
                  "ocsvm": "OCSVM", "ddaebm": "ddaebm"}
TASK_LABEL = {"CIFAR10_vs_SVHN": "CIFAR-10 → SVHN (resnet18)",
              "MVTec-AD_bottle": "MVTec-AD bottle (resnet18)",
              "MVTec-AD_cable": "MVTec-AD cable (resnet18)",
              "CIFAR10_vs_SVHN30": "CIFAR-10 → SVHN, OOD = SVHN 30% split"}


def _merge(docs):
    cells, core, extra, metas = {}, [], [], []
    for doc in docs:
        metas.append(doc["meta"])
        for t in doc["meta"]["core_tasks"]:
            core.append(t) if t not in core else None
        for t in doc["meta"]["extra_tasks"]:
            extra.append(t) if t not in extra else None
        for r in doc["results"]:
            cells[(r["task"], r["seed"], r["detector"])] = r
    return cells, core, extra, metas


def _stats(cells, task, det, metric):
    vals = [r[metric] for (t, _, d), r in sorted(cells.items()) if t == task and d == det and metric in r]
    if not vals:
        return None
    sd = statistics.stdev(vals) if len(vals) > 1 else None  # no "± 0" for a single seed
    return statistics.fmean(vals), sd, len(vals)


def _fmt(x, sd=None, bold=False):
    s = f"{x:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
    return f"**{s}**" if bold else s


def _table(cells, core, extra, dets, metric, higher_better, with_std):
    present = {t for (t, _, _) in cells}
    core_rows = [t for t in core if t in present]
    extra_rows = [t for t in extra if t in present]
    head = "| task | " + " | ".join(DETECTOR_LABEL.get(d, d) for d in dets) + " |"
    lines = [head, "|---|" + "---:|" * len(dets)]

    def row(label, values, stds):
        finite = [v for v in values if v is not None]
        best = (max if higher_better else min)(finite) if finite else None
        out = []
        for v, sd in zip(values, stds):
            out.append("—" if v is None else _fmt(v, sd if with_std else None, math.isclose(v, best, abs_tol=5e-4)))
        lines.append(f"| {label} | " + " | ".join(out) + " |")

    per_task = {}
    for t in core_rows + extra_rows:
        st = [_stats(cells, t, d, metric) for d in dets]
        per_task[t] = [s[0] if s else None for s in st]
        if t in core_rows:
            row(TASK_LABEL.get(t, t), per_task[t], [s[1] if s else None for s in st])
    # Mean over the core tasks: only for detectors with every core task present.
    means = []
    for i, _ in enumerate(dets):
        vals = [per_task[t][i] for t in core if t in per_task]
        ok = len(vals) == len(core) and all(v is not None for v in vals)
        means.append(statistics.fmean(vals) if ok else None)
    row(f"**mean ({len(core)} tasks)**", means, [None] * len(dets))
    for t in extra_rows:
        row(TASK_LABEL.get(t, t) + " †", per_task[t], [None] * len(dets))
    return "\n".join(lines)


def render(docs) -> str:
    cells, core, extra, metas = _merge(docs)
    dets_present = {d for (_, _, d) in cells}
    dets = [d for d in DETECTOR_ORDER if d in dets_present] + sorted(dets_present - set(DETECTOR_ORDER))
    seeds = sorted({s for (_, s, _) in cells})
    errors = [r for r in cells.values() if "error" in r]

    out = [HEADING, ""]
    out.append(
        "One-class protocol of `shared/data/README.md`: per task and seed "
        f"({', '.join(map(str, seeds))}), stratified 70/30 split "
        "(`train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)`), fit on the 70% "
        "part's normal rows (y = 0), score the whole 30% part; OOD / anomaly = positive. Baselines are "
        "PyOD defaults (IForest `random_state=seed`, ECOD, KNN k = 5 `method='largest'`, LOF k = 20, "
        "OCSVM rbf `gamma='auto'` ν = 0.5) on features standardised with a StandardScaler fitted on "
        "the training rows; ddaebm gets raw features. PyOD's ECOD is transductive: it computes its "
        "ECDFs on the training rows and the scored rows together, so its scores depend on the make-up "
        "of the scored set (see the two CIFAR-10 → SVHN rows). CIFAR-10 → SVHN: fit on the 70% normal rows of "
        "`CIFAR10_0`, in-distribution = its 30% held-out normal rows (its anomalies are dropped), "
        "OOD = all normal rows of `SVHN_0` (4948, no subsampling); the extra row \"OOD = SVHN 30% split\" "
        "uses only the normal rows of the 30% part of `SVHN_0`'s own split with the same seed (~1485). "
        f"Mean row = unweighted mean over the {len(core)} tasks of the per-task seed means; "
        "† = extra row, not in the mean. Best per row in bold. Generated by `bench/ood/run.py` / "
        "`bench/ood/report.py`."
    )
    out += ["", "### AUROC (mean ± sample std over seeds)", "",
            _table(cells, core, extra, dets, "auroc", True, True),
            "", "### AUPR (mean over seeds)", "",
            _table(cells, core, extra, dets, "aupr", True, False),
            "", "### FPR at 95% TPR (mean over seeds; lower is better)", "",
            "TPR measured on in-distribution rows: the threshold accepts the lowest 95% of the "
            "in-distribution scores; FPR = share of OOD rows accepted too "
            "(same definition as `ddaebm-train eval`).", "",
            _table(cells, core, extra, dets, "fpr95", False, False), ""]

    # Calibration: TPR of the stored threshold on the held-out in-distribution test rows.
    tpr_rows = [t for t in core + extra
                if any(t == tt and "tpr_at_threshold" in r for (tt, _, _), r in cells.items())]
    if tpr_rows:
        out += ["### ddaebm: TPR at the stored threshold (target 0.95)", "",
                "Share of the held-out in-distribution test rows that the threshold stored in the "
                "model file (calibrated by `fit` on its own held-out training rows) accepts; "
                "per seed, then the mean. Outside 0.95 ± 0.03 in bold.", "",
                "| task | ID test rows | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                "|---|---:|" + "---:|" * (len(seeds) + 1)]
        for t in tpr_rows:
            rs = {s: r for (tt, s, d), r in cells.items()
                  if tt == t and d == "ddaebm" and "tpr_at_threshold" in r}
            vals = [rs[s]["tpr_at_threshold"] if s in rs else None for s in seeds]
            n_id = next((r["n_test"] - r["n_ood"] for r in rs.values() if "n_ood" in r), "")

            def cell(v):
                if v is None:
                    return "–"
                return f"**{v:.3f}**" if abs(v - 0.95) > 0.03 else f"{v:.3f}"
            present = [v for v in vals if v is not None]
            label = t + (" †" if t in extra else "")
            out.append(f"| {label} | {n_id} | " + " | ".join(cell(v) for v in vals)
                       + f" | {cell(statistics.fmean(present))} |")
        out.append("")

    # ddaebm per task: fit time and the training record's sampler figure (files that record it).
    dd_rows = [t for t in core + extra
               if any(t == tt and d == "ddaebm" and "fit_s" in r for (tt, _, d), r in cells.items())]
    if dd_rows:
        out += ["### ddaebm: fit time and sample quality per task", "",
                "Fit seconds per seed (mean and largest; runs shared the two cores with another "
                "fit, so these are upper bounds) and the sample-quality figure `fit` stores in the "
                "training record (samples of the model's sampler against its held-out calibration "
                "rows in normalised units: leave-one-out 1-NN accuracy, 0.5 = indistinguishable, "
                "and MMD² at the median bandwidth; mean over seeds; – where the file predates it).",
                "", "| task | d | train rows | fit s (mean) | fit s (max) | 1-NN accuracy | MMD² |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for t in dd_rows:
            rs = [r for (tt, _, d), r in cells.items() if tt == t and d == "ddaebm" and "fit_s" in r]
            fits = [r["fit_s"] for r in rs]
            qs = [r["sample_quality"] for r in rs if r.get("sample_quality")]
            nn = f"{statistics.fmean(q['nn_accuracy'] for q in qs):.3f}" if qs else "–"
            mmd = f"{statistics.fmean(q['mmd2'] for q in qs):.4f}" if qs else "–"
            label = t + (" †" if t in extra else "")
            out.append(f"| {label} | {rs[0].get('d', '')} | {rs[0].get('n_train', '')} | "
                       f"{statistics.fmean(fits):.0f} | {max(fits):.0f} | {nn} | {mmd} |")
        out.append("")

    # Timing: summed over all runs of each detector.
    out += ["### Time (s, fit + score, summed over all tasks and seeds in the table)", "",
            "| detector | fit | score | runs |", "|---|---:|---:|---:|"]
    for d in dets:
        rs = [r for (_, _, dd), r in cells.items() if dd == d and "fit_s" in r]
        out.append(f"| {DETECTOR_LABEL.get(d, d)} | {sum(r['fit_s'] for r in rs):.1f} | "
                   f"{sum(r['score_s'] for r in rs):.1f} | {len(rs)} |")
    out.append("")
    for m in metas:
        v = m.get("versions", {})
        line = (f"Run {m.get('date')}: detectors {', '.join(m['detectors'])}; "
                f"python {v.get('python')}, numpy {v.get('numpy')}, scipy {v.get('scipy')}, "
                f"scikit-learn {v.get('sklearn')}, pyod {v.get('pyod')}; {m.get('threads')} BLAS thread(s), "
                f"{v.get('cpu_count')} CPUs (shared); wall time {m.get('total_s', 0):.0f} s")
        if m.get("ddaebm_args") is not None:
            line += f"; ddaebm fit args: `{' '.join(m['ddaebm_args']) or '(defaults)'}`"
        out.append(f"- {line}.")
    if errors:
        out += ["", f"**{len(errors)} run(s) failed:**", ""]
        out += [f"- {r['task']} seed {r['seed']} {r['detector']}: {r['error'][:200]}" for r in errors]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, help="write here instead of stdout")
    args = ap.parse_args(argv)
    text = render([json.loads(p.read_text()) for p in args.json])
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
