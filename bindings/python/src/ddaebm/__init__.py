"""Python bindings for ``libddaebm``: out-of-distribution detection with DDAEBM.

>>> import ddaebm
>>> with ddaebm.Model("detector.safetensors") as model:          # doctest: +SKIP
...     energy, is_ood = model.screen(rows)                       # rows: (n, input_dim)
...     print(f"flagged {is_ood.sum()} of {len(rows)}")

Higher energy means more out-of-distribution; ``is_ood`` compares it with the threshold
calibrated at training time. The shared library is found through ``DDAEBM_LIBRARY``, next to
this package, or on the system's library path (see ``ddaebm._ffi``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._errors import (
    BadModelError,
    DeviceUnavailableError,
    Error,
    InternalError,
    InvalidArgumentError,
    LibraryNotFoundError,
    ModelIOError,
    NonFiniteError,
    NullArgumentError,
    PanicError,
    ShapeMismatchError,
    Status,
    UnsupportedVersionError,
)
from ._fit import Detector, TrainerNotFoundError, TrainingError, fit, trainer_path
from ._model import DriftResult, Model, shared_model


def library_version() -> str:
    """Version of the loaded shared library."""
    from . import _ffi

    version: bytes = _ffi.lib().ddaebm_version()
    return version.decode()


def library_path() -> str:
    """Path of the loaded shared library (loading it if needed): the one bundled in a wheel,
    ``DDAEBM_LIBRARY``, or the system's."""
    from . import _ffi

    return str(_ffi.lib()._name)


__all__ = [
    "BadModelError",
    "Detector",
    "TrainerNotFoundError",
    "TrainingError",
    "fit",
    "library_path",
    "trainer_path",
    "DeviceUnavailableError",
    "DriftResult",
    "Error",
    "InternalError",
    "InvalidArgumentError",
    "LibraryNotFoundError",
    "Model",
    "ModelIOError",
    "NonFiniteError",
    "NullArgumentError",
    "PanicError",
    "ShapeMismatchError",
    "shared_model",
    "Status",
    "UnsupportedVersionError",
    "library_version",
]
