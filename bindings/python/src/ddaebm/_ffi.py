"""Finding and loading ``libddaebm`` and declaring the C functions (``include/ddaebm.h``).

The library is looked for, in order:

1. ``DDAEBM_LIBRARY``: the path of the shared library, or of a directory holding it;
2. next to this package (``libddaebm.so`` / ``libddaebm.dylib`` / ``ddaebm.dll`` copied
   beside ``__init__.py``);
3. the system's library search path (``ctypes.util.find_library("ddaebm")``).

It is loaded on first use, so ``import ddaebm`` always works and the error, if any, comes from
the first call that needs the library, as a :class:`LibraryNotFoundError` saying where it
looked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from ctypes import POINTER, c_char_p, c_double, c_float, c_size_t, c_uint32, c_uint64, c_void_p
from pathlib import Path

from ._errors import LibraryNotFoundError, Status, error_for

if sys.platform == "darwin":
    _LIBNAME = "libddaebm.dylib"
elif sys.platform == "win32":
    _LIBNAME = "ddaebm.dll"
else:
    _LIBNAME = "libddaebm.so"


class OpenOptions(ctypes.Structure):
    """``ddaebm_open_options``."""

    _fields_ = [("device", c_char_p), ("threads", c_uint32)]


class DriftResultStruct(ctypes.Structure):
    """``ddaebm_drift_result``."""

    _fields_ = [
        ("p_value", c_double),
        ("effect", c_double),
        ("z", c_double),
        ("batch_rows", c_uint64),
        ("calibration_rows", c_uint64),
    ]


# Row and output buffers (float *, uint8_t *) are declared as void pointers so that a numpy
# array's address (``arr.ctypes.data``, an int) passes straight through: building a typed
# pointer with ``data_as`` costs more than the whole single-row call in the library. The
# package only ever passes C-contiguous arrays of the right dtype that it made itself.
_BUF = c_void_p

# name -> (restype, argtypes)
_SIGNATURES = {
    "ddaebm_version": (c_char_p, []),
    "ddaebm_version_number": (c_uint32, []),
    "ddaebm_model_open": (c_uint32, [c_char_p, POINTER(OpenOptions), POINTER(c_void_p)]),
    "ddaebm_model_free": (None, [c_void_p]),
    "ddaebm_model_input_dim": (c_size_t, [c_void_p]),
    "ddaebm_model_image_shape": (
        c_uint32,
        [c_void_p, POINTER(c_size_t), POINTER(c_size_t), POINTER(c_size_t)],
    ),
    "ddaebm_model_threshold": (c_float, [c_void_p]),
    "ddaebm_model_metadata": (c_char_p, [c_void_p]),
    "ddaebm_energy": (c_uint32, [c_void_p, _BUF, c_size_t, c_size_t, _BUF]),
    "ddaebm_screen": (c_uint32, [c_void_p, _BUF, c_size_t, c_size_t, _BUF, _BUF]),
    "ddaebm_pvalues": (c_uint32, [c_void_p, _BUF, c_size_t, c_size_t, _BUF]),
    "ddaebm_explain": (c_uint32, [c_void_p, _BUF, c_size_t, c_size_t, _BUF]),
    # The result is a DriftResultStruct, passed by address like the buffers.
    "ddaebm_drift": (c_uint32, [c_void_p, _BUF, c_size_t, c_size_t, _BUF]),
    "ddaebm_sample": (c_uint32, [c_void_p, c_size_t, c_uint64, _BUF, c_size_t]),
    "ddaebm_last_error": (c_char_p, []),
    "ddaebm_status_string": (c_char_p, [c_uint32]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _candidates() -> list[str]:
    found = []
    env = os.environ.get("DDAEBM_LIBRARY")
    if env:
        p = Path(env)
        found.append(str(p / _LIBNAME if p.is_dir() else p))
        return found  # an explicit choice is never second-guessed
    found.append(str(Path(__file__).resolve().parent / _LIBNAME))
    system = ctypes.util.find_library("ddaebm")
    if system:
        found.append(system)
    return found


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if os.path.sep in path and not Path(path).exists():
            tried.append(f"{path} (not found)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _check_version(lib, path)
        return lib
    raise LibraryNotFoundError(
        "cannot load the ddaebm shared library; set DDAEBM_LIBRARY to the path of "
        f"{_LIBNAME} (or a directory holding it), or copy it next to {__file__}. Tried: "
        + "; ".join(tried or ["ctypes.util.find_library('ddaebm') found nothing"])
    )


def _check_version(lib: ctypes.CDLL, path: str) -> None:
    from . import __version__

    have = lib.ddaebm_version().decode()
    if have.split(".")[:2] != __version__.split(".")[:2]:
        raise LibraryNotFoundError(
            f"{path} is ddaebm {have} but this package is {__version__}: "
            "the C ABI is not stable across minor versions, install matching versions"
        )


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first call)."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib = _load()
    return _lib


def check(status: int) -> None:
    """Raises the exception for a failed call. Must run on the thread that made the call, right
    after it: the message is per thread."""
    if status != Status.OK:
        raise error_for(status, lib().ddaebm_last_error().decode("utf-8", "replace"))
