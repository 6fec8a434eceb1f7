"""Metrics of the OOD benchmark. Convention: higher score = more out-of-distribution, label 1 = OOD."""
from __future__ import annotations

import math

import numpy as np


def fpr_at_tpr(scores_id, scores_ood, tpr: float = 0.95) -> float:
    """False-positive rate at the given TPR, TPR measured on the in-distribution rows.

    The threshold accepts (calls "in-distribution") the lowest ``tpr`` share of the
    in-distribution scores: it is the ceil(tpr * n_id)-th smallest ID score. The FPR is the share
    of OOD rows that are accepted too, i.e. whose score is <= the threshold (missed OOD rows).
    Same definition as ``fpr_at_tpr`` in train/src/metrics.rs (what ``ddaebm-train eval`` prints).
    """
    s_id = np.sort(np.asarray(scores_id, dtype=np.float64).ravel())
    s_ood = np.asarray(scores_ood, dtype=np.float64).ravel()
    if s_id.size == 0 or s_ood.size == 0:
        return math.nan
    idx = min(max(math.ceil(tpr * s_id.size), 1), s_id.size) - 1
    threshold = s_id[idx]
    return float(np.mean(s_ood <= threshold))


def all_metrics(y, scores) -> dict:
    """AUROC, AUPR (OOD = positive) and FPR@95%TPR of scores against labels y (1 = OOD)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y).ravel().astype(int)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{int((~np.isfinite(s)).sum())} non-finite scores")
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": fpr_at_tpr(s[y == 0], s[y == 1], 0.95),
    }
