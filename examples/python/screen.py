#!/usr/bin/env python3
"""Screen the rows of a CSV file with a ddaebm model and report how many look out-of-distribution.

    python screen.py MODEL.safetensors ROWS.csv

ROWS.csv holds one row per line, comma-separated numbers, no header.
"""

import sys

import numpy as np

import ddaebm


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    model_path, rows_path = sys.argv[1:]
    try:
        rows = np.loadtxt(rows_path, delimiter=",", dtype=np.float32, ndmin=2)
        with ddaebm.Model(model_path) as model:
            energy, is_ood = model.screen(rows)
            print(f"flagged {int(is_ood.sum())} of {len(rows)} rows (threshold {model.threshold:g})")
            for i in np.flatnonzero(is_ood):  # rows counted from 0, as in the library's messages
                print(f"row {i}: energy {energy[i]:g}")
    except (ddaebm.Error, ddaebm.LibraryNotFoundError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
