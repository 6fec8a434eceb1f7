"""Fitting from Python: ddaebm.fit runs the trainer (the one the installed wheel bundles, or
DDAEBM_TRAIN) and ddaebm.Detector behaves as a scikit-learn estimator."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import ddaebm


def two_blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0, 1.0], [-2.0, 1.0, 0.0]], dtype=np.float32)
    return (centres[rng.integers(0, 2, n)] + 0.3 * rng.standard_normal((n, 3))).astype(np.float32)


# A short run: the tests check the plumbing, not the detector.
QUICK = {"steps": 40, "generator_steps": 40, "batch_size": 64}
# The same for a Detector: steps is its own parameter, the rest are trainer options.
QUICK_OPTIONS = {"generator_steps": 40, "batch_size": 64}


def test_fit_writes_the_file_the_cli_writes(tmp_path: Path):
    X = two_blobs(600, 0)
    path = tmp_path / "m.safetensors"
    model = ddaebm.fit(X, path, seed=3, progress=False, **QUICK)
    assert path.exists() and model.input_dim == 3
    training = model.metadata["training"]
    assert training["config"]["steps"] == 40 and training["config"]["generator_steps"] == 40
    assert training["config"]["seed"] == 3
    # The same run through the command line gives the same model, bit for bit.
    np.save(tmp_path / "x.npy", X)
    cli = tmp_path / "cli.safetensors"
    # The `ddaebm-train` command on PATH: the wheel's entry point, which runs its bundled trainer.
    command = shutil.which("ddaebm-train")
    assert command is not None, "ddaebm-train is not on PATH"
    subprocess.run(
        [command, "fit", "--data", str(tmp_path / "x.npy"), "--out", str(cli),
         "--seed", "3", "--steps", "40", "--generator-steps", "40", "--batch-size", "64"],
        check=True, capture_output=True,
    )
    with ddaebm.Model(cli) as m:
        rows = two_blobs(50, 1)
        assert (model.energy(rows).view(np.uint32) == m.energy(rows).view(np.uint32)).all()
    # Far rows score higher than fresh in-distribution rows.
    far = two_blobs(50, 2) + 8.0
    assert np.median(model.energy(far)) > np.median(model.energy(two_blobs(50, 3)))
    model.close()


def test_fit_errors_carry_the_trainer_message(tmp_path: Path):
    X = two_blobs(300, 0)
    with pytest.raises(ddaebm.TrainingError, match="does not apply to --method gcd"):
        ddaebm.fit(X, tmp_path / "m.safetensors", method="gcd", progress=False, lr_generator=1e-3)
    with pytest.raises(ddaebm.TrainingError, match="unknown --method"):
        ddaebm.fit(X, tmp_path / "m.safetensors", method="nope", progress=False)
    with pytest.raises(ddaebm.TrainingError, match="shape"):
        ddaebm.fit(np.zeros(5, np.float32), tmp_path / "m.safetensors", progress=False)
    assert not (tmp_path / "m.safetensors").exists()
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ddaebm.TrainingError):
        ddaebm.fit(bad, tmp_path / "m.safetensors", progress=False, **QUICK)
    assert not (tmp_path / "m.safetensors").exists()


def test_the_trainer_is_found_or_the_error_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import ddaebm._fit

    monkeypatch.delenv("DDAEBM_TRAIN", raising=False)
    bundled = ddaebm._fit.bundled_trainer()
    if bundled is not None:
        # An installed wheel: its own trainer comes first, whatever PATH holds.
        assert bundled.parent == Path(ddaebm.__file__).parent / "bin"
        monkeypatch.setenv("PATH", str(tmp_path))
        assert ddaebm.trainer_path() == bundled
    # DDAEBM_TRAIN overrides everything, and a wrong one is reported as such.
    monkeypatch.setenv("DDAEBM_TRAIN", str(tmp_path / "missing"))
    with pytest.raises(ddaebm.TrainerNotFoundError, match="DDAEBM_TRAIN"):
        ddaebm.trainer_path()
    monkeypatch.delenv("DDAEBM_TRAIN")
    # No bundled trainer: PATH is searched, skipping the package's own entry-point script (which
    # would only look for a trainer again).
    monkeypatch.setattr(ddaebm._fit, "bundled_trainer", lambda: None)
    wrapper = tmp_path / "ddaebm-train"
    wrapper.write_text("#!/usr/bin/python3\nfrom ddaebm._cli import main\nmain()\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ddaebm.TrainerNotFoundError, match="not found"):
        ddaebm.trainer_path()
    real = tmp_path / "real"
    real.mkdir()
    (real / "ddaebm-train").write_bytes(b"\x7fELF")
    (real / "ddaebm-train").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), str(real)]))
    assert ddaebm.trainer_path() == real / "ddaebm-train"


def test_detector_follows_the_scikit_learn_conventions(tmp_path: Path):
    X = two_blobs(600, 0)
    det = ddaebm.Detector(seed=1, steps=40, options=QUICK_OPTIONS)
    assert det.fit(X) is det
    rows = np.concatenate([two_blobs(20, 5), two_blobs(20, 6) + 8.0])
    energy = det.model_.energy(rows)
    assert (det.score_samples(rows) == -energy).all()
    assert np.allclose(det.decision_function(rows), np.float32(det.threshold_) - energy)
    pred = det.predict(rows)
    assert set(np.unique(pred)) <= {-1, 1}
    assert (pred == np.where(energy > det.threshold_, -1, 1)).all()
    assert (pred[20:] == -1).all()
    # Parameters round-trip, and clone gives an unfitted copy with the same parameters.
    params = det.get_params()
    assert params["seed"] == 1 and params["steps"] == 40 and params["options"] == QUICK_OPTIONS
    copy = clone(det)
    assert copy.get_params() == params and not hasattr(copy, "model_")
    with pytest.raises(ValueError, match="no parameter"):
        det.set_params(nope=1)
    with pytest.raises(ValueError, match="not fitted"):
        copy.predict(rows)
    # save / load: the file is the model, in any language.
    det.save(tmp_path / "saved.safetensors")
    loaded = ddaebm.Detector.load(tmp_path / "saved.safetensors")
    assert (loaded.predict(rows) == pred).all()


def test_detector_in_a_pipeline():
    X = two_blobs(600, 0)
    pipe = Pipeline([("scale", StandardScaler()), ("detect", ddaebm.Detector(steps=40, options=QUICK_OPTIONS))])
    pipe.fit(X)
    pred = pipe.predict(np.concatenate([two_blobs(20, 7), two_blobs(20, 8) + 8.0]))
    assert pred.shape == (40,) and (pred[20:] == -1).all()
    assert pipe.set_params(detect__seed=4).get_params()["detect__seed"] == 4


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery")
def test_fit_shows_progress(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    ddaebm.fit(two_blobs(300, 0), tmp_path / "m.safetensors", progress=True, **QUICK).close()
    err = capfd.readouterr().err
    assert "fitting 300 rows" in err and "wrote" in err
