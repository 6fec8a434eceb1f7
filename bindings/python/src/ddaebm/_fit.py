"""Fitting from Python: ``ddaebm.fit`` runs the ``ddaebm-train`` trainer (same defaults, same
file, same calibration as the command line), and ``ddaebm.Detector`` wraps it in the
scikit-learn estimator interface."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._cli import bundled_trainer, trainer_on_path
from ._errors import Error, Status
from ._model import Model


class TrainerNotFoundError(Error, FileNotFoundError):
    """The ``ddaebm-train`` program could not be found."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.IO, message)


class TrainingError(Error):
    """``ddaebm-train fit`` failed; ``message`` is the trainer's own error line."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.INVALID_ARGUMENT, message)


def trainer_path() -> Path:
    """The ``ddaebm-train`` program: ``DDAEBM_TRAIN``, else one shipped inside this package
    (``ddaebm/bin/``), else the first on ``PATH``."""
    env = os.environ.get("DDAEBM_TRAIN")
    if env:
        path = Path(env)
        if not path.is_file():
            raise TrainerNotFoundError(f"DDAEBM_TRAIN={env} is not a file")
        return path
    found = bundled_trainer() or trainer_on_path()
    if found is not None:
        return found
    raise TrainerNotFoundError(
        "ddaebm-train not found: set DDAEBM_TRAIN to its path or put it on PATH "
        "(cargo build --release -p ddaebm-train builds it)"
    )


def _flag(name: str, value: Any) -> list[str]:
    """``name=value`` as command-line arguments: ``--name value``; True alone, False/None
    omitted; lists joined with commas."""
    flag = "--" + name.replace("_", "-")
    if value is True:
        return [flag]
    if value is False or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, str(value)]


def fit(
    X: npt.ArrayLike,
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    steps: int | None = None,
    device: str = "cpu",
    method: str | None = None,
    progress: bool = True,
    **options: Any,
) -> Model:
    """Fits a detector on the in-distribution rows ``X`` and writes it to ``path``.

    ``X``: ``(n, d)`` feature rows, or ``(n, C, H, W)`` images. The bundled ``ddaebm-train fit``
    does the work, with its defaults (``steps`` None), its calibration and its atomic write;
    ``method`` is ``"ddaebm"`` (default), ``"gcd"`` or ``"dcd"``; any other ``ddaebm-train fit``
    option is passed as a keyword (``generator_steps=0``, ``val_fraction=0.2``, ...). With
    ``progress`` the trainer's progress lines go to standard error. Ctrl-C stops the trainer
    cleanly (no model file is written; its checkpoint ``<path>.ckpt`` stays, and the same call
    with ``resume=True`` continues from it) and raises ``KeyboardInterrupt``. A failure raises
    :class:`TrainingError` with the trainer's message. Returns the opened model.
    """
    arr = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    if arr.ndim not in (2, 4) or arr.shape[0] == 0:
        raise TrainingError(f"X must be (n, d) rows or (n, C, H, W) images, got shape {arr.shape}")
    out = Path(path)
    args = ["fit", "--out", str(out), "--seed", str(int(seed)), "--device", device]
    args += _flag("steps", steps) + _flag("method", method)
    for name, value in options.items():
        args += _flag(name, value)
    with tempfile.TemporaryDirectory(prefix="ddaebm-fit-") as tmp:
        data = Path(tmp) / "train.npy"
        np.save(data, arr)
        cmd = [str(trainer_path()), *args, "--data", str(data)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tail: deque[str] = deque(maxlen=20)
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                tail.append(line.rstrip("\n"))
                if progress:
                    sys.stderr.write(line)
            proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
    if proc.returncode != 0:
        errors = [line for line in tail if line.startswith("error:")]
        message = errors[-1][len("error:"):].strip() if errors else "\n".join(tail)
        raise TrainingError(f"ddaebm-train fit failed: {message}")
    return Model(out, device=device)


try:  # scikit-learn's base classes where it is installed (Pipeline needs their tags)
    from sklearn.base import BaseEstimator as _BaseEstimator  # type: ignore[import-untyped]
    from sklearn.base import OutlierMixin as _OutlierMixin

    _BASES: tuple[type, ...] = (_OutlierMixin, _BaseEstimator)
except ImportError:  # pragma: no cover - the interface works without scikit-learn
    _BASES = (object,)


class Detector(*_BASES):  # type: ignore[misc]
    """A scikit-learn-style detector: ``fit`` trains with :func:`fit`, then

    * ``score_samples(X)``: the negated energy (higher = more normal, as in scikit-learn);
    * ``decision_function(X)``: ``threshold − energy`` (negative = outlier);
    * ``predict(X)``: ``+1`` inlier, ``−1`` outlier against the calibrated threshold.

    ``get_params`` / ``set_params`` make it usable in ``Pipeline``, ``clone`` and grid
    searches; ``save`` copies the model file, ``Detector.load`` opens one. Parameters are
    those of :func:`fit`; ``path`` (default: a temporary file kept for the detector's life)
    is where the model file goes, ``options`` any other ``ddaebm-train fit`` options.
    """

    _PARAMS = ("path", "seed", "steps", "method", "device", "progress", "options")

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        seed: int = 0,
        steps: int | None = None,
        method: str | None = None,
        device: str = "cpu",
        progress: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.seed = seed
        self.steps = steps
        self.method = method
        self.device = device
        self.progress = progress
        self.options = options

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> Detector:
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"Detector has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def fit(self, X: npt.ArrayLike, y: object = None) -> Detector:
        """Trains on ``X`` (``y`` is ignored: one-class training)."""
        if self.path is not None:
            out = Path(self.path)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="ddaebm-detector-")
            out = Path(self._tmp.name) / "detector.safetensors"
        self.model_ = fit(
            X,
            out,
            seed=self.seed,
            steps=self.steps,
            device=self.device,
            method=self.method,
            progress=self.progress,
            **(self.options or {}),
        )
        self.path_ = out
        self.threshold_ = self.model_.threshold
        return self

    def _fitted(self) -> Model:
        model = getattr(self, "model_", None)
        if not isinstance(model, Model):
            raise ValueError("this Detector is not fitted yet: call fit(X) first")
        return model

    def score_samples(self, X: npt.ArrayLike) -> np.ndarray:
        """Negated energies: higher = more like the training data."""
        energy: np.ndarray = self._fitted().energy(X)
        return -energy

    def decision_function(self, X: npt.ArrayLike) -> np.ndarray:
        """``threshold − energy``: positive for inliers, negative for outliers."""
        model = self._fitted()
        energy: np.ndarray = model.energy(X)
        margin: np.ndarray = np.float32(model.threshold) - energy
        return margin

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """``+1`` for rows the model accepts, ``−1`` for rows above the calibrated threshold."""
        _, is_ood = self._fitted().screen(X)
        return np.where(is_ood, -1, 1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Copies the fitted model file to ``path``."""
        self._fitted()
        shutil.copyfile(self.path_, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> Detector:
        """A fitted detector from a model file (any language's: the file is the model)."""
        det = cls(path=path, device=device)
        det.model_ = Model(path, device=device)
        det.path_ = Path(path)
        det.threshold_ = det.model_.threshold
        return det
