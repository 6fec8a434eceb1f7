"""tpr_spread.py's copies of the library's rules agree with the Rust ones (`pytest`)."""
import re
from pathlib import Path

import numpy as np

from tpr_spread import MIN_CALIBRATION_ROWS, VAL_FRACTION, calibration_rows, interpolated_thresholds

REPO = Path(__file__).resolve().parents[2]


def test_constants_match_the_trainer():
    fit_rs = (REPO / "train" / "src" / "fit.rs").read_text()
    assert re.search(rf"pub const MIN_CALIBRATION_ROWS: usize = {MIN_CALIBRATION_ROWS};", fit_rs)
    assert re.search(rf"val_fraction: {VAL_FRACTION},", fit_rs)


def test_calibration_rows_follow_split_indices():
    # a tenth, but at least 100 rows or a third of the data (wine: 83 rows -> 27)
    assert calibration_rows(83) == 27
    assert calibration_rows(250) == 83
    assert calibration_rows(600) == 100
    assert calibration_rows(4667) == 467


def test_thresholds_match_calibration_rs():
    # the cases of calibration.rs' threshold_is_the_interpolated_quantile_at_rank_t_n_plus_1
    def one(values, t):
        return interpolated_thresholds(np.sort(np.asarray(values, float))[None, :], t)[0]

    assert one(range(1, 20), 0.95) == 19
    assert one(range(1, 100), 0.9) == 90
    assert abs(one([10 * i for i in range(1, 28)], 0.95) - 266) < 1e-9
    assert one([5, 7], 0.99) == 7 and one([5, 7], 0.01) == 5 and one([4], 0.5) == 4
