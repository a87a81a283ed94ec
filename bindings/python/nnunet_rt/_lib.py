"""Finding, loading and declaring the nnunet-rt shared library (ctypes).

Search order: the ``library=`` argument, the ``NNUNET_RT_LIB`` environment variable, a library
inside or beside this package's directory (in a 3D Slicer extension, also ``lib/Slicer-X.Y`` above
``qt-scripted-modules``), then ``target/release`` and ``target/debug`` of a source checkout found by
walking up from this package (the more recently built of the two first, so a stale build of the
other profile is not picked up). An explicit path (argument or environment variable) that does
not load is an error; it never falls through to the others. A discovered library that does not
load, or has another ABI version, is reported and the next one is tried.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from .errors import LibraryError

#: The C ABI version this package was written against (``NNRT_ABI_VERSION`` in nnunet_rt.h).
ABI_VERSION = 2

ENV_LIBRARY = "NNUNET_RT_LIB"

if sys.platform == "win32":
    LIBRARY_NAMES = ("nnunet_rt.dll",)
elif sys.platform == "darwin":
    LIBRARY_NAMES = ("libnnunet_rt.dylib",)
else:
    LIBRARY_NAMES = ("libnnunet_rt.so",)

# Status codes (nnrt_status).
NNRT_OK = 0
NNRT_INVALID_ARGUMENT = 1
NNRT_NULL_ARGUMENT = 2
NNRT_IO = 3
NNRT_INVALID_IMAGE = 4
NNRT_INVALID_MODEL = 5
NNRT_UNSUPPORTED_MODEL = 6
NNRT_SHAPE_MISMATCH = 7
NNRT_RUNTIME_UNAVAILABLE = 8
NNRT_RUNTIME_ERROR = 9
NNRT_OUT_OF_MEMORY = 10
NNRT_CANCELLED = 11
NNRT_PANIC = 12
NNRT_POISONED = 13

# Voxel types (nnrt_volume.dtype).
NNRT_DTYPE_U8 = 1
NNRT_DTYPE_I8 = 2
NNRT_DTYPE_U16 = 3
NNRT_DTYPE_I16 = 4
NNRT_DTYPE_U32 = 5
NNRT_DTYPE_I32 = 6
NNRT_DTYPE_F32 = 7
NNRT_DTYPE_F64 = 8

NNRT_DEVICE_CPU = 0
NNRT_DEVICE_CUDA = 1
NNRT_DEVICE_OPENVINO = 2
NNRT_DEVICE_AUTO = 3

NNRT_NETWORK_PRECISION_F32 = 0
NNRT_NETWORK_PRECISION_BF16 = 1

NNRT_STAGE_PREPROCESS = 0
NNRT_STAGE_NETWORK = 1
NNRT_STAGE_EXPORT = 2

NNRT_CLASSIFICATION_LESION_WEIGHTED = 0
NNRT_CLASSIFICATION_LESION_VOXELS = 2
NNRT_CLASSIFICATION_MEAN = 1


class nnrt_volume(Structure):
    """``struct nnrt_volume``: a borrowed, described voxel buffer (x fastest)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("data", c_void_p),
        ("dtype", c_uint32),
        ("dims", c_size_t * 3),
        ("channels", c_size_t),
        ("spacing", c_double * 3),
        ("origin", c_double * 3),
        ("direction", c_double * 9),
        ("byte_strides", c_int64 * 4),
    ]

    def __init__(self):
        super().__init__()
        self.struct_size = ctypes.sizeof(nnrt_volume)


# Log levels (nnrt_set_log_callback).
NNRT_LOG_VERBOSE = 0
NNRT_LOG_INFO = 1
NNRT_LOG_WARNING = 2
NNRT_LOG_ERROR = 3

#: ``nnrt_log_fn``: void (*)(uint32_t level, const char *message, void *user_data).
LOG_FN = CFUNCTYPE(None, c_uint32, c_char_p, c_void_p)


#: ``nnrt_progress_fn``: int32_t (*)(uint32_t stage, double fraction, void *user_data).
PROGRESS_FN = CFUNCTYPE(c_int32, c_uint32, c_double, c_void_p)

_status = c_uint32
_handle = c_void_p
_out_handle = POINTER(c_void_p)

# name: (restype, argtypes)
_PROTOTYPES = {
    "nnrt_model_load": (_status, [c_char_p, _handle, _out_handle]),
    "nnrt_model_load_from_memory": (_status, [c_void_p, c_size_t, _handle, _out_handle]),
    "nnrt_model_load_ensemble": (_status, [POINTER(c_char_p), c_size_t, _handle, _out_handle]),
    "nnrt_bundle_write": (_status, [c_char_p, _handle, c_char_p]),
    "nnrt_cancel": (_status, [_handle]),
    "nnrt_estimate_peak_bytes": (_status, [_handle, POINTER(nnrt_volume), _handle, POINTER(c_uint64)]),
    "nnrt_model_channel_name": (_status, [_handle, c_size_t, POINTER(c_char_p)]),
    "nnrt_result_label_name": (_status, [_handle, c_size_t, POINTER(c_char_p)]),
    "nnrt_runtime_info": (_status, [POINTER(c_char_p)]),
    "nnrt_set_log_callback": (_status, [LOG_FN, c_void_p, c_uint32]),
    "nnrt_predict_options_set_precision_name": (_status, [_handle, c_char_p]),
    "nnrt_predict_options_set_memory_limit": (_status, [_handle, c_uint64]),
    "nnrt_model_free": (None, [_handle]),
    "nnrt_model_num_channels": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_model_num_labels": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_model_label_name": (_status, [_handle, c_size_t, POINTER(c_char_p)]),
    "nnrt_model_num_classes": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_model_class_name": (_status, [_handle, c_size_t, POINTER(c_char_p)]),
    "nnrt_model_num_folds": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_model_fold_name": (_status, [_handle, c_size_t, POINTER(c_char_p)]),
    "nnrt_model_spacing": (_status, [_handle, POINTER(c_double)]),
    "nnrt_model_patch_size": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_predict": (_status, [_handle, POINTER(nnrt_volume), _handle, _out_handle]),
    "nnrt_options_new": (_status, [_out_handle]),
    "nnrt_options_free": (None, [_handle]),
    "nnrt_options_set_device": (_status, [_handle, c_uint32, c_int32]),
    "nnrt_options_set_threads": (_status, [_handle, c_uint32]),
    "nnrt_options_set_folds": (_status, [_handle, POINTER(c_char_p), c_size_t]),
    "nnrt_options_set_ort_library": (_status, [_handle, c_char_p]),
    "nnrt_options_set_network_precision": (_status, [_handle, c_uint32]),
    "nnrt_options_set_tf32": (_status, [_handle, c_int32]),
    "nnrt_options_set_openvino_library": (_status, [_handle, c_char_p]),
    "nnrt_options_set_openvino_cache_dir": (_status, [_handle, c_char_p]),
    "nnrt_options_set_postprocessing_file": (_status, [_handle, c_char_p]),
    "nnrt_options_set_skip_postprocessing": (_status, [_handle, c_int32]),
    "nnrt_options_set_previous_stage_model": (_status, [_handle, c_char_p]),
    "nnrt_options_set_device_name": (_status, [_handle, c_char_p]),
    "nnrt_options_set_network_precision_name": (_status, [_handle, c_char_p]),
    "nnrt_predict_options_set_classification_policy_name": (_status, [_handle, c_char_p]),
    "nnrt_model_runtime_info": (_status, [_handle, POINTER(c_char_p)]),
    "nnrt_predict_options_new": (_status, [_out_handle]),
    "nnrt_predict_options_free": (None, [_handle]),
    "nnrt_predict_options_set_step_size": (_status, [_handle, c_double]),
    "nnrt_predict_options_set_tta": (_status, [_handle, c_int32]),
    "nnrt_predict_options_set_roi_focus": (_status, [_handle, c_int32]),
    "nnrt_predict_options_set_probabilities": (_status, [_handle, c_int32]),
    "nnrt_predict_options_set_classification_policy": (_status, [_handle, c_uint32]),
    "nnrt_predict_options_set_progress": (_status, [_handle, PROGRESS_FN, c_void_p]),
    "nnrt_result_free": (None, [_handle]),
    "nnrt_result_labels": (_status, [_handle, POINTER(c_void_p), POINTER(c_uint32), POINTER(c_size_t)]),
    "nnrt_result_num_labels": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_result_probabilities": (_status, [_handle, POINTER(c_void_p), POINTER(c_size_t)]),
    "nnrt_result_num_classes": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_result_class_probabilities": (_status, [_handle, POINTER(c_void_p), POINTER(c_size_t)]),
    "nnrt_result_predicted_class": (_status, [_handle, POINTER(c_size_t)]),
    "nnrt_result_class_name": (_status, [_handle, c_size_t, POINTER(c_char_p)]),
    "nnrt_result_timings_ms": (_status, [_handle, POINTER(c_double)]),
    "nnrt_last_error_message": (c_char_p, []),
    "nnrt_status_str": (c_char_p, [c_uint32]),
    "nnrt_abi_version": (c_uint32, []),
    "nnrt_version": (c_char_p, []),
}


class Library:
    """A loaded nnunet-rt shared library with its functions declared."""

    def __init__(self, path: Path, cdll: ctypes.CDLL):
        self.path = path
        self.cdll = cdll
        try:
            abi_version = cdll.nnrt_abi_version
        except AttributeError as exc:
            raise LibraryError(f"{path} is not an nnunet-rt library with a C ABI (no nnrt_abi_version)") from exc
        abi_version.restype = c_uint32
        abi_version.argtypes = []
        abi = abi_version()
        if abi != ABI_VERSION:
            raise LibraryError(
                f"{path} implements C ABI version {abi}, but this nnunet_rt package was written for "
                f"version {ABI_VERSION}; use the library and the Python bindings of the same nnunet-rt release"
            )
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                function = getattr(cdll, name)
            except AttributeError as exc:
                raise LibraryError(f"{path} is not a usable nnunet-rt library: it has no symbol {name}") from exc
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)

    @property
    def version(self) -> str:
        """The library's version string, e.g. ``nnunet-rt/0.1.0 ort/... onnxruntime-api/31``."""
        return self.nnrt_version().decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<nnunet_rt.Library {str(self.path)!r} {self.version!r}>"


_loaded: dict[str, Library] = {}
_loaded_lock = threading.Lock()


def candidates() -> list[Path]:
    """Places searched when neither ``library=`` nor ``NNUNET_RT_LIB`` is given, in order."""
    package_dir = Path(__file__).resolve().parent
    # Inside the package (a bundled copy), then beside it (e.g. in site-packages).
    directories = [package_dir, package_dir.parent]
    if package_dir.parent.name == "qt-scripted-modules":
        # A 3D Slicer extension: the native libraries are in lib/Slicer-X.Y, above qt-scripted-modules.
        directories.append(package_dir.parent.parent)
    found = [directory / name for directory in directories for name in LIBRARY_NAMES]
    for directory in package_dir.parents:
        if (directory / "Cargo.toml").is_file():
            builds = [directory / "target" / profile / name for profile in ("release", "debug") for name in LIBRARY_NAMES]
            # Stable sort: the more recently built first, release first when equal or absent.
            found.extend(sorted(builds, key=lambda p: -_mtime(p)))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("-inf")


def _open(path: Path) -> Library:
    key = str(path.resolve())
    with _loaded_lock:
        library = _loaded.get(key)
        if library is None:
            try:
                cdll = ctypes.CDLL(key)
            except OSError as exc:
                raise LibraryError(f"cannot load {path}: {exc}") from exc
            library = Library(path, cdll)
            _loaded[key] = library
        return library


def load_library(library: str | os.PathLike | None = None) -> Library:
    """Loads (once per path) and returns the nnunet-rt library.

    ``library`` is a path to ``libnnunet_rt.so`` (or ``.dylib`` / ``.dll``). Without it, the
    ``NNUNET_RT_LIB`` environment variable, then inside or beside the package, then ``target/release``
    and ``target/debug`` of an enclosing source checkout are tried. Raises
    :class:`~nnunet_rt.LibraryError` listing every place tried, or naming the ABI mismatch.
    """
    if library is not None:
        return _open_explicit(Path(library), "the library= argument")
    from_env = os.environ.get(ENV_LIBRARY)
    if from_env:
        return _open_explicit(Path(from_env), f"${ENV_LIBRARY}")
    tried = []
    for path in candidates():
        if not path.is_file():
            tried.append(f"{path} (not found)")
            continue
        try:
            return _open(path)
        except LibraryError as exc:
            tried.append(f"{path} ({exc.message})")
    raise LibraryError(
        "no usable nnunet-rt library found. Tried:\n  "
        + "\n  ".join(["library= argument (not given)", f"${ENV_LIBRARY} (not set)"] + tried)
        + f"\nBuild it with `cargo build --release --lib` in the nnunet-rt source tree, or set "
        f"{ENV_LIBRARY} to the path of {LIBRARY_NAMES[0]}."
    )


def _open_explicit(path: Path, source: str) -> Library:
    if not path.is_file():
        raise LibraryError(f"{source} names {path}, which does not exist")
    return _open(path)
