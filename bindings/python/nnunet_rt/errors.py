"""The exception hierarchy: one class per C status code, all deriving from NnunetRtError."""

from __future__ import annotations


class NnunetRtError(Exception):
    """An nnunet-rt failure.

    ``status`` is the C status code (``NNRT_*``), or ``None`` for failures of these bindings
    themselves (library not found, ABI mismatch). ``status_name`` is the library's name for the
    status (``nnrt_status_str``) and ``message`` the one-line detail
    (``nnrt_last_error_message``).
    """

    status: int | None = None

    def __init__(self, status: int | None, message: str, status_name: str | None = None):
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.status_name = status_name or _DEFAULT_NAMES.get(status, "error")

    def __str__(self) -> str:
        return f"{self.status_name}: {self.message}" if self.message else self.status_name


class LibraryError(NnunetRtError):
    """The nnunet-rt shared library could not be found or loaded, or its ABI version differs."""

    def __init__(self, message: str):
        super().__init__(None, message, "library unavailable")
        self.args = (message,)


class InvalidArgument(NnunetRtError, ValueError):
    """An argument is out of its documented range (also: using a closed model)."""

    status = 1


class NullArgument(NnunetRtError, ValueError):
    """A required pointer argument was NULL (a bug in these bindings if it ever happens)."""

    status = 2


class Io(NnunetRtError):
    """A file could not be read or written (e.g. a missing model folder)."""

    status = 3


class InvalidImage(NnunetRtError, ValueError):
    """The input volume is malformed (dims, dtype, spacing, direction, NaN voxels)."""

    status = 4


class InvalidModel(NnunetRtError):
    """The model folder is incomplete or inconsistent."""

    status = 5


class UnsupportedModel(NnunetRtError):
    """The model uses something nnunet-rt does not implement."""

    status = 6


class ShapeMismatch(NnunetRtError, ValueError):
    """The input does not fit the model (e.g. channel count)."""

    status = 7


class RuntimeUnavailable(NnunetRtError):
    """The ONNX Runtime library could not be found or loaded."""

    status = 8


class RuntimeError_(NnunetRtError):
    """ONNX Runtime failed while creating a session or running the network."""

    status = 9


class OutOfMemory(NnunetRtError):
    """The memory limit would be exceeded, or an allocation failed."""

    status = 10


class Cancelled(NnunetRtError):
    """The progress callback asked to stop."""

    status = 11


class Panic(NnunetRtError):
    """The library hit an internal error (a bug); the message has the details."""

    status = 12


class Poisoned(NnunetRtError):
    """The model is unusable because an earlier call panicked while using it; load it again."""

    status = 13


#: Status code → exception class.
BY_STATUS: dict[int, type[NnunetRtError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        NullArgument,
        Io,
        InvalidImage,
        InvalidModel,
        UnsupportedModel,
        ShapeMismatch,
        RuntimeUnavailable,
        RuntimeError_,
        OutOfMemory,
        Cancelled,
        Panic,
        Poisoned,
    )
}

_DEFAULT_NAMES = {
    1: "invalid argument",
    2: "null argument",
    3: "input/output error",
    4: "invalid image",
    5: "invalid model",
    6: "unsupported model",
    7: "shape mismatch",
    8: "ONNX Runtime unavailable",
    9: "ONNX Runtime error",
    10: "out of memory",
    11: "cancelled",
    12: "internal error (panic)",
    13: "model poisoned by an earlier panic",
}


def error_for(status: int, message: str, status_name: str | None = None) -> NnunetRtError:
    """The exception for a C status code (unknown codes give the base class)."""
    return BY_STATUS.get(status, NnunetRtError)(status, message, status_name)
