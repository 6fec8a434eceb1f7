#!/usr/bin/env python3
"""OOD benchmark: classic baselines and ddaebm on ADBench + CIFAR-10 -> SVHN (see README.md).

Protocol (shared/data/README.md): for each task and seed, stratified 70/30 split of (X, y); fit on
the 70% part's rows with y == 0; score the 30% part; AUROC, AUPR (OOD positive), FPR@95%TPR;
mean over seeds. Baselines see features standardised with a StandardScaler fitted on the training
rows; ddaebm gets raw features (it normalises internally and stores the scaler in the model).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

ALL_DETECTORS = ["iforest", "ecod", "knn", "lof", "ocsvm", "ddaebm"]
CLASSICAL = [
    "2_annthyroid", "6_cardio", "23_mammography", "24_mnist", "26_optdigits", "28_pendigits",
    "31_satimage-2", "38_thyroid", "43_WDBC", "45_wine",
]
CIFAR_TASK = "CIFAR10_vs_SVHN"  # OOD = all SVHN_0 normal rows
# Variant: OOD = only the normal rows of the 30% part of SVHN_0's own seeded stratified split
# (~1485 rows, about as many as the in-distribution rows). Matters only for transductive scorers
# (PyOD's ECOD computes its ECDFs on training + test rows together); see README.md.
CIFAR_TASK_30 = "CIFAR10_vs_SVHN30"
CORE_TASKS = CLASSICAL + [CIFAR_TASK]  # the 11 tasks of the mean row
EXTRA_TASKS = ["MVTec-AD_bottle", "MVTec-AD_cable", CIFAR_TASK_30]  # extra rows, not in the mean
ALL_TASKS = CORE_TASKS + EXTRA_TASKS


def select_tasks(spec: str) -> list[str]:
    """Comma list of task names / globs; keywords: core (the 11, default), extra (MVTec), all."""
    chosen: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "core":
            hits = CORE_TASKS
        elif part == "extra":
            hits = EXTRA_TASKS
        elif part == "all":
            hits = ALL_TASKS
        else:
            hits = [t for t in ALL_TASKS if fnmatch.fnmatch(t.lower(), part.lower())
                    or fnmatch.fnmatch(t.lower(), f"*{part.lower()}")]
            if not hits:
                sys.exit(f"no task matches {part!r}; tasks: {', '.join(ALL_TASKS)}")
        chosen += [t for t in hits if t not in chosen]
    return chosen


def load_task(name: str, data_dir: Path, seed: int):
    """Returns (X_train, X_test, y_test, info) for one task and seed."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    def split(path: Path):
        d = np.load(path)
        X, y = d["X"], d["y"].astype(int).ravel()
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
        return X_tr[y_tr == 0], X_te, y_te

    if name in (CIFAR_TASK, CIFAR_TASK_30):
        X_train, X_te, y_te = split(data_dir / "adbench/resnet18/CIFAR10_0.npz")
        X_id = X_te[y_te == 0]  # held-out normal CIFAR rows; CIFAR anomalies of the 30% part dropped
        if name == CIFAR_TASK:
            s = np.load(data_dir / "adbench/resnet18/SVHN_0.npz")
            X_ood = s["X"][s["y"].astype(int).ravel() == 0]  # all SVHN normal rows, no subsampling
        else:
            _, X_s, y_s = split(data_dir / "adbench/resnet18/SVHN_0.npz")
            X_ood = X_s[y_s == 0]
        X_test = np.concatenate([X_id, X_ood]).astype(X_train.dtype)
        y_test = np.concatenate([np.zeros(len(X_id), int), np.ones(len(X_ood), int)])
    else:
        sub = "resnet18" if name.startswith("MVTec") else "classical"
        X_train, X_test, y_test = split(data_dir / "adbench" / sub / f"{name}.npz")
    info = {"n_train": int(len(X_train)), "n_test": int(len(X_test)),
            "n_ood": int(y_test.sum()), "d": int(X_train.shape[1])}
    return X_train, X_test, y_test, info


def make_baseline(name: str, seed: int):
    """PyOD detectors with their defaults (KNN k=5 'largest', LOF k=20, OCSVM rbf gamma='auto' nu=0.5)."""
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF
    from pyod.models.ocsvm import OCSVM

    return {
        "iforest": lambda: IForest(random_state=seed),
        "ecod": lambda: ECOD(),
        "knn": lambda: KNN(n_neighbors=5),
        "lof": lambda: LOF(n_neighbors=20),
        "ocsvm": lambda: OCSVM(),
    }[name]()


def run_baseline(name: str, seed: int, X_train, X_test):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_train)
    Xtr, Xte = scaler.transform(X_train), scaler.transform(X_test)
    det = make_baseline(name, seed)
    t0 = time.perf_counter()
    det.fit(Xtr)
    t1 = time.perf_counter()
    scores = det.decision_function(Xte)  # higher = more anomalous
    t2 = time.perf_counter()
    return scores, {"fit_s": t1 - t0, "score_s": t2 - t1}


def run_ddaebm(binary: Path, extra_args: list[str], seed: int, X_train, X_test, tmp_root: Path,
               keep: bool):
    import numpy as np

    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=tmp_root))
    try:
        train, test = tmp / "train.npy", tmp / "test.npy"
        model, energies = tmp / "model.safetensors", tmp / "e.npy"
        np.save(train, np.ascontiguousarray(X_train, dtype=np.float32))
        np.save(test, np.ascontiguousarray(X_test, dtype=np.float32))
        fit_cmd = [str(binary), "fit", "--data", str(train), "--out", str(model),
                   "--seed", str(seed), *extra_args]
        score_cmd = [str(binary), "score", "--model", str(model), "--data", str(test),
                     "--out", str(energies)]
        t0 = time.perf_counter()
        fit = subprocess.run(fit_cmd, capture_output=True, text=True)
        t1 = time.perf_counter()
        if fit.returncode != 0:
            raise RuntimeError(f"{shlex.join(fit_cmd)} failed ({fit.returncode}):\n{fit.stderr[-2000:]}")
        sc = subprocess.run(score_cmd, capture_output=True, text=True)
        t2 = time.perf_counter()
        if sc.returncode != 0:
            raise RuntimeError(f"{shlex.join(score_cmd)} failed ({sc.returncode}):\n{sc.stderr[-2000:]}")
        scores = np.load(energies).astype(np.float64).ravel()
        if scores.shape[0] != len(X_test):
            raise RuntimeError(f"score wrote {scores.shape[0]} energies for {len(X_test)} rows")
        inspect = subprocess.run([str(binary), "inspect", "--model", str(model)],
                                 capture_output=True, text=True, check=True)
        info = json.loads(inspect.stdout)
        threshold = info["metadata"]["calibration"]["threshold"]
        return scores, {"fit_s": t1 - t0, "score_s": t2 - t1, "threshold": threshold,
                        # the training record's sampler figure (absent in older files)
                        "sample_quality": info.get("sample_quality"),
                        "fit_log_tail": (fit.stdout + fit.stderr)[-600:]}
    finally:
        if not keep:
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()


def versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "cpu_count": os.cpu_count()}
    for mod in ("numpy", "scipy", "sklearn", "pyod"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", default=",".join(ALL_DETECTORS),
                    help=f"comma list among {','.join(ALL_DETECTORS)} (default: all)")
    ap.add_argument("--datasets", default="core",
                    help="comma list of task names or globs (e.g. '45_wine,*thyroid*'); keywords: "
                         "core = the 11 tasks (default), extra = the two MVTec-AD tasks and the "
                         f"{CIFAR_TASK_30} variant, all = both. "
                         f"Tasks: {', '.join(ALL_TASKS)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--ddaebm-bin", type=Path, default=REPO / "target" / "release" / "ddaebm-train")
    ap.add_argument("--ddaebm-args", default="", help='extra args for `ddaebm-train fit`, e.g. "--steps 2000"')
    ap.add_argument("--ddaebm-label", default="ddaebm",
                    help='name of the ddaebm rows in the results, e.g. "ddaebm-gcd" with --ddaebm-args "--method gcd"')
    ap.add_argument("--tmp-dir", type=Path, default=REPO / "target" / "bench-ood")
    ap.add_argument("--keep-tmp", action="store_true", help="keep ddaebm's temp files")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/OpenMP threads for the baselines (default 1)")
    ap.add_argument("--out-json", type=Path, help="write per-task/seed/detector metrics and timings")
    ap.add_argument("--markdown", type=Path, help="write the markdown tables (see report.py)")
    args = ap.parse_args(argv)

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    if not (args.data_dir / "adbench").is_dir():
        print(f"data directory {args.data_dir} (with adbench/) not found: skipped")
        return 0

    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    bad = [d for d in detectors if d not in ALL_DETECTORS]
    if bad:
        ap.error(f"unknown detectors {bad}; choose among {ALL_DETECTORS}")
    if "ddaebm" in detectors and not args.ddaebm_bin.is_file():
        ap.error(f"{args.ddaebm_bin} not found: build it with `cargo build --release -p ddaebm-train` "
                 "or pass --ddaebm-bin")
    tasks = select_tasks(args.datasets)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    extra = shlex.split(args.ddaebm_args)

    from metrics import all_metrics
    import report

    results, t_start = [], time.perf_counter()
    for task in tasks:
        for seed in seeds:
            X_train, X_test, y_test, info = load_task(task, args.data_dir, seed)
            for det in detectors:
                label = args.ddaebm_label if det == "ddaebm" else det
                row = {"task": task, "seed": seed, "detector": label, **info}
                try:
                    if det == "ddaebm":
                        scores, timing = run_ddaebm(args.ddaebm_bin, extra, seed, X_train, X_test,
                                                    args.tmp_dir, args.keep_tmp)
                    else:
                        scores, timing = run_baseline(det, seed, X_train, X_test)
                    row.update(all_metrics(y_test, scores))
                    row.update(timing)
                    if "threshold" in timing:
                        # TPR of the model's stored threshold on the held-out in-distribution rows
                        # (is_ood = energy > threshold).
                        row["tpr_at_threshold"] = float(
                            (scores[y_test == 0] <= timing["threshold"]).mean())
                except Exception as e:  # noqa: BLE001 - record and go on with the other runs
                    row["error"] = f"{type(e).__name__}: {e}"
                results.append(row)
                if "error" in row:
                    print(f"{task:18s} seed {seed} {label:8s} ERROR {row['error']}", flush=True)
                else:
                    tpr = (f" TPR@thr {row['tpr_at_threshold']:.3f}"
                           if "tpr_at_threshold" in row else "")
                    print(f"{task:18s} seed {seed} {label:8s} AUROC {row['auroc']:.4f} "
                          f"AUPR {row['aupr']:.4f} FPR95 {row['fpr95']:.4f}{tpr} "
                          f"fit {row['fit_s']:.2f}s score {row['score_s']:.2f}s", flush=True)
    total = time.perf_counter() - t_start

    doc = {
        "meta": {
            "protocol": "stratified 70/30 split (sklearn train_test_split, random_state=seed); fit on "
                        "the 70% part's y==0 rows; score the 30% part; baselines on StandardScaler "
                        "(fitted on the training rows) features, ddaebm on raw features. "
                        f"{CIFAR_TASK}: train = 70% CIFAR10_0 normal rows, ID = 30% held-out CIFAR10_0 "
                        "normal rows, OOD = all SVHN_0 normal rows. "
                        f"{CIFAR_TASK_30}: same, but OOD = the normal rows of the 30% part of "
                        "SVHN_0's own stratified split (random_state=seed).",
            "core_tasks": CORE_TASKS, "extra_tasks": EXTRA_TASKS,
            "tasks": tasks, "seeds": seeds, "detectors": detectors,
            "ddaebm_bin": str(args.ddaebm_bin) if "ddaebm" in detectors else None,
            "ddaebm_args": extra if "ddaebm" in detectors else None,
            "threads": args.threads, "total_s": total,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": versions(),
            "command": shlex.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        },
        "results": results,
    }
    print(f"total {total:.1f}s, {sum('error' in r for r in results)} errors")
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report.render([doc]))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
