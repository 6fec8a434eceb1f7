"""pytest bench/ood/test_metrics.py"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import all_metrics, fpr_at_tpr  # noqa: E402


def test_fpr_hand_example():
    # ID scores 1..20: 95% of 20 = 19 rows accepted, threshold = 19 (same case as train/src/metrics.rs).
    id_ = np.arange(1, 21, dtype=float)
    assert fpr_at_tpr(id_, [18.5, 19.0, 19.5, 30.0]) == 0.5  # 18.5 and 19 (tie) are missed
    assert fpr_at_tpr(id_, [100.0]) == 0.0
    assert fpr_at_tpr(id_, [0.0, 1.0]) == 1.0


def test_fpr_small_and_rounding():
    # 10 ID rows: ceil(9.5) = 10 -> threshold is the largest ID score.
    id_ = [0.1 * i for i in range(10)]  # max 0.9
    assert fpr_at_tpr(id_, [0.5, 0.95, 2.0, 0.9]) == 0.5
    # Order of inputs does not matter; other TPR.
    assert fpr_at_tpr([4, 3, 2, 1], [2.5, 3.5], tpr=0.5) == 0.0  # threshold 2
    assert fpr_at_tpr([4, 3, 2, 1], [2.5, 3.5], tpr=0.75) == 0.5  # threshold 3
    assert math.isnan(fpr_at_tpr([], [1.0]))


def test_all_metrics_hand_example():
    # ID {1, 3}, OOD {2, 4}: AUROC 3/4, AP = 1/2 * 1 + 1/2 * 2/3.
    m = all_metrics([0, 0, 1, 1], [1.0, 3.0, 2.0, 4.0])
    assert m["auroc"] == pytest.approx(0.75)
    assert m["aupr"] == pytest.approx(0.5 + 1 / 3)
    assert m["fpr95"] == 0.5  # threshold = 3 (2nd of 2 ID rows); OOD 2 accepted
    perfect = all_metrics([0, 0, 1], [0.0, 0.1, 5.0])
    assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}


def test_non_finite_scores_rejected():
    with pytest.raises(ValueError):
        all_metrics([0, 1], [0.0, float("nan")])
