"""``Model``: an opened detector."""

from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _ffi
from ._errors import ShapeMismatchError, Status


@dataclass(frozen=True)
class DriftResult:
    """The outcome of :meth:`Model.drift`: the one-sided rank-sum test of a batch's energies
    against the held-out in-distribution energies stored in the model."""

    p_value: float
    """One-sided p-value: small when the batch's energies are higher than the calibration
    energies. For in-distribution batches ``P(p <= alpha) ~ alpha``."""
    effect: float
    """The probability that a batch row's energy exceeds a calibration row's (ties count half):
    0.5 for in-distribution batches, towards 1 for out-of-distribution ones."""
    z: float
    """The standardised rank-sum statistic (positive: batch energies higher)."""
    batch_rows: int
    """Rows in the batch."""
    calibration_rows: int
    """Rows in the model's calibration set."""


class Model:
    """A trained ddaebm detector, memory-mapped from a ``.safetensors`` model file.

    ``device`` is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``threads`` is the number of worker
    threads for this model's CPU compute (0: the process-wide pool, one per core).

    A model is immutable: any number of Python threads may call its methods at once (the
    library releases the GIL while it computes). :meth:`close` releases it; it waits for calls
    in flight, and later calls raise ``ValueError``. Use it as a context manager to close it
    deterministically.
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int = 0):
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
        lib = _ffi.lib()
        opts = _ffi.OpenOptions(device.encode(), threads)
        handle = ctypes.c_void_p()
        self._ptr: int | None = None
        self._active = 0
        self._cond = threading.Condition()
        _ffi.check(lib.ddaebm_model_open(os.fsencode(path), ctypes.byref(opts), ctypes.byref(handle)))
        self._ptr = handle.value
        self._input_dim = int(lib.ddaebm_model_input_dim(self._ptr))
        self._threshold = float(lib.ddaebm_model_threshold(self._ptr))
        self._metadata_json = lib.ddaebm_model_metadata(self._ptr).decode()
        shape = (ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t())
        _ffi.check(lib.ddaebm_model_image_shape(self._ptr, *map(ctypes.byref, shape)))
        self._image_shape: tuple[int, int, int] | None = (
            (shape[0].value, shape[1].value, shape[2].value) if shape[0].value else None
        )

    # --- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Releases the model. Idempotent; waits for calls still running on other threads."""
        cond = getattr(self, "_cond", None)
        if cond is None:  # __init__ failed before the handle existed
            return
        with cond:
            ptr, self._ptr = self._ptr, None
            while self._active:
                cond.wait()
        if ptr is not None:
            _ffi.lib().ddaebm_model_free(ptr)

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"input_dim={self._input_dim}"
        return f"<ddaebm.Model {state}>"

    def _acquire(self) -> int:
        with self._cond:
            if self._ptr is None:
                raise ValueError("the model is closed")
            self._active += 1
            return self._ptr

    def _release(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    # --- getters --------------------------------------------------------------------------

    @property
    def input_dim(self) -> int:
        """Features per row."""
        return self._input_dim

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(channels, height, width)`` of an image model, ``None`` for a model of feature
        vectors. An image model scores rows of ``channels * height * width`` values (=
        :attr:`input_dim`), channel-major (a C-ordered ``(n, C, H, W)`` array flattened per
        image), in the raw pixel scale it was trained on; the scoring methods also take the
        ``(n, C, H, W)`` array itself."""
        return self._image_shape

    @property
    def threshold(self) -> float:
        """Calibrated energy threshold: rows above it are flagged out-of-distribution."""
        return self._threshold

    @property
    def metadata(self) -> dict[str, Any]:
        """The model's metadata (network, schedule, normalisation, calibration, training)."""
        meta: dict[str, Any] = json.loads(self._metadata_json)
        return meta

    # --- scoring --------------------------------------------------------------------------

    def _rows(self, x: npt.ArrayLike) -> np.ndarray:
        """``x`` as a C-contiguous float32 2-D array; a 1-D array is one row, and for an image
        model an ``(n, C, H, W)`` array is ``n`` rows of ``C·H·W`` values."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        elif arr.ndim == 4 and self._image_shape is not None:
            if arr.shape[1:] != self._image_shape:
                c, h, w = self._image_shape
                raise ShapeMismatchError(
                    Status.SHAPE_MISMATCH,
                    f"expected an (n, {c}, {h}, {w}) array of images (n, channels, height, "
                    f"width), got shape {arr.shape}",
                )
            arr = arr.reshape(arr.shape[0], self._input_dim)
        if arr.ndim != 2:
            images = ""
            if self._image_shape is not None:
                c, h, w = self._image_shape
                images = f" or a 4-D array of (n, {c}, {h}, {w}) images"
            raise ShapeMismatchError(
                Status.SHAPE_MISMATCH,
                f"expected a 2-D array of rows × {self._input_dim} features{images}, "
                f"got shape {arr.shape}",
            )
        return arr

    def _score(
        self, fn_name: str, arr: np.ndarray, *outs: np.ndarray | ctypes.Structure | None
    ) -> None:
        """Calls a scoring function on rows already converted by :meth:`_rows`; each output is
        an array, a ctypes structure or ``None``."""
        fn = getattr(_ffi.lib(), fn_name)
        out_ptrs = [
            None
            if o is None
            else o.ctypes.data
            if isinstance(o, np.ndarray)
            else ctypes.addressof(o)
            for o in outs
        ]
        ptr = self._acquire()
        try:
            status = fn(ptr, arr.ctypes.data, arr.shape[0], arr.shape[1], *out_ptrs)
        finally:
            self._release()
        _ffi.check(status)

    def energy(self, x: npt.ArrayLike) -> np.ndarray:
        """Energy of each row (float32, shape ``(n,)``); higher = more out-of-distribution.

        ``x`` is anything numpy turns into a float array of shape ``(n, input_dim)`` (a 1-D
        array is one row), or for an image model of shape ``(n, *image_shape)``. Wrong shapes
        raise :class:`ShapeMismatchError`, NaN/Inf :class:`NonFiniteError`, both with the
        library's message.
        """
        rows = self._rows(x)
        out = np.empty(rows.shape[0], dtype=np.float32)
        self._score("ddaebm_energy", rows, out)
        return out

    def screen(self, x: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(energy, is_ood)``: energies and the boolean decision against :attr:`threshold`."""
        rows = self._rows(x)
        energy = np.empty(rows.shape[0], dtype=np.float32)
        flags = np.empty(rows.shape[0], dtype=np.uint8)
        self._score("ddaebm_screen", rows, energy, flags)
        return energy, flags.astype(bool)

    def pvalues(self, x: npt.ArrayLike) -> np.ndarray:
        """Conformal p-value of each row against the held-out in-distribution energies
        (float32, small = unusual)."""
        rows = self._rows(x)
        out = np.empty(rows.shape[0], dtype=np.float32)
        self._score("ddaebm_pvalues", rows, out)
        return out

    def explain(self, x: npt.ArrayLike) -> np.ndarray:
        """Per-feature attributions of each row's energy (float32, shape ``(n, input_dim)``;
        for an image model ``(n, C·H·W)``, channel-major): entry ``j`` of a row is how much
        feature ``j`` raised that row's energy, in raw feature units (integrated gradients from
        the training rows' mean; a row's entries sum to about its energy minus the mean's).
        About 256 gradient evaluations per row.

        ``x`` and its errors as for :meth:`energy`.
        """
        rows = self._rows(x)
        out = np.empty(rows.shape, dtype=np.float32)
        self._score("ddaebm_explain", rows, out)
        return out

    def drift(self, x: npt.ArrayLike) -> DriftResult:
        """Whether the batch ``x`` as a whole comes from the in-distribution data the model was
        calibrated on: a one-sided Wilcoxon–Mann–Whitney rank-sum test of its energies against
        the calibration energies stored in the model. A small ``p_value`` says the batch has
        drifted towards out-of-distribution.

        ``x`` as for :meth:`energy`, with at least one row (an empty batch raises
        :class:`InvalidArgumentError`); wrong shapes and NaN/Inf raise as for :meth:`energy`.
        """
        rows = self._rows(x)
        out = _ffi.DriftResultStruct()
        self._score("ddaebm_drift", rows, out)
        return DriftResult(
            p_value=out.p_value,
            effect=out.effect,
            z=out.z,
            batch_rows=out.batch_rows,
            calibration_rows=out.calibration_rows,
        )

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` rows drawn from the model (float32, shape ``(n, input_dim)``); the same seed
        gives the same rows."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        out = np.empty((int(n), self._input_dim), dtype=np.float32)
        ptr = self._acquire()
        try:
            status = _ffi.lib().ddaebm_sample(
                ptr, int(n), int(seed), out.ctypes.data, out.size
            )
        finally:
            self._release()
        _ffi.check(status)
        return out


_shared_lock = threading.Lock()
_shared: dict[tuple[str, int, int, str, int], Model] = {}


def shared_model(path: str | os.PathLike[str], device: str = "cpu", threads: int = 0) -> Model:
    """The model at ``path``, opened once per process and reused by every later call.

    Meant for code that a data platform runs many times in the same worker process (a Spark
    pandas UDF or ``mapInPandas`` function, a Ray task): the first call on a worker opens the
    file, later calls, from any thread, get the same :class:`Model`. A file replaced on disk
    (another size or modification time) is opened afresh; a shared model someone closed is
    reopened. Models opened here stay open until the process exits.
    """
    resolved = os.path.realpath(os.fspath(path))
    stat = os.stat(resolved)
    key = (resolved, stat.st_size, stat.st_mtime_ns, device, threads)
    with _shared_lock:
        model = _shared.get(key)
        if model is None or model.closed:
            model = Model(resolved, device=device, threads=threads)
            _shared[key] = model
        return model
