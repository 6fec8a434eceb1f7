import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    d = Path(os.environ.get("DDAEBM_FIXTURE_DIR", REPO / "target" / "bindings-fixture"))
    if not (d / "model.safetensors").exists():
        pytest.fail(f"binding fixture missing at {d}: run scripts/test-bindings.sh")
    return d


@pytest.fixture(scope="session")
def info(fixture_dir: Path) -> dict:
    pairs = (line.split() for line in (fixture_dir / "fixture.txt").read_text().splitlines())
    return {k: v for k, v in pairs}


@pytest.fixture(scope="session")
def rows(fixture_dir: Path, info: dict) -> np.ndarray:
    return np.fromfile(fixture_dir / "rows.f32", dtype="<f4").reshape(int(info["rows"]), int(info["dim"]))


def bits(a: np.ndarray) -> np.ndarray:
    """Float32 values as their bit patterns, for bit-exact comparisons."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
