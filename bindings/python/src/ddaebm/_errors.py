"""Status codes of the C API and the exceptions they become."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """``ddaebm_status`` codes (``include/ddaebm.h``)."""

    OK = 0
    NULL_ARGUMENT = 1
    INVALID_ARGUMENT = 2
    IO = 3
    BAD_MODEL = 4
    UNSUPPORTED_VERSION = 5
    SHAPE_MISMATCH = 6
    NON_FINITE = 7
    DEVICE_UNAVAILABLE = 8
    INTERNAL = 9
    PANIC = 10


class Error(Exception):
    """A failed ddaebm call: ``status`` is the library's code, ``message`` its explanation."""

    def __init__(self, status: Status | int, message: str) -> None:
        try:
            status = Status(status)
        except ValueError:
            pass
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class NullArgumentError(Error):
    """A required pointer was NULL (a bug in the binding if it ever surfaces)."""


class InvalidArgumentError(Error, ValueError):
    """An argument is outside its domain (unknown device name, sizes that overflow, ...)."""


class ModelIOError(Error, OSError):
    """The model file could not be read (missing, unreadable)."""

    def __init__(self, status: Status | int, message: str) -> None:
        Error.__init__(self, status, message)

    def __str__(self) -> str:
        return self.message


class BadModelError(Error):
    """The file is not a ddaebm model, or it is truncated or damaged."""


class UnsupportedVersionError(Error):
    """The model file was written by a newer format version than the library reads."""


class ShapeMismatchError(Error, ValueError):
    """The input's row length differs from the model's input dimension, or a size is wrong."""


class NonFiniteError(Error, ValueError):
    """The input holds NaN or Inf; the message names the row and column."""


class DeviceUnavailableError(Error):
    """The requested device cannot be used (no CUDA in this build, no GPU on this host)."""


class InternalError(Error):
    """The tensor library failed (out of memory, driver error)."""


class PanicError(Error):
    """A bug in ddaebm was caught at the library boundary; please report it."""


class LibraryNotFoundError(ImportError):
    """``libddaebm`` could not be found or loaded."""


_BY_STATUS: dict[int, type[Error]] = {
    Status.NULL_ARGUMENT: NullArgumentError,
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.IO: ModelIOError,
    Status.BAD_MODEL: BadModelError,
    Status.UNSUPPORTED_VERSION: UnsupportedVersionError,
    Status.SHAPE_MISMATCH: ShapeMismatchError,
    Status.NON_FINITE: NonFiniteError,
    Status.DEVICE_UNAVAILABLE: DeviceUnavailableError,
    Status.INTERNAL: InternalError,
    Status.PANIC: PanicError,
}


def error_for(status: int, message: str) -> Error:
    """The exception for a failed call's status and message."""
    return _BY_STATUS.get(status, Error)(status, message)
