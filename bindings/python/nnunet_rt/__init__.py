"""nnunet_rt: run nnU-Net v2 models from Python through the nnunet-rt C library (ctypes + numpy).

    import numpy as np, nnunet_rt
    with nnunet_rt.Model("MODEL_DIR") as model:
        prediction = model.predict(volume_zyx, spacing=(0.8, 0.8, 2.5))
        print(prediction.label_counts(), prediction.predicted_class_name)

Arrays are indexed (z, y, x) (x fastest in memory, as ITK/NIfTI/VTK store them); spacing,
origin and direction follow ITK's (x, y, z) LPS convention.
"""

from ._lib import ABI_VERSION, Library, load_library
from .errors import (
    Cancelled,
    InvalidArgument,
    InvalidImage,
    InvalidModel,
    Io,
    LibraryError,
    NnunetRtError,
    NullArgument,
    OutOfMemory,
    Panic,
    Poisoned,
    RuntimeError_,
    RuntimeUnavailable,
    ShapeMismatch,
    UnsupportedModel,
)
from .model import Model, Prediction, as_volume_array, runtime_info, set_log_handler, write_bundle

__version__ = "0.1.0"


def library_version(library=None) -> str:
    """The nnunet-rt library's version string (loads the library if needed)."""
    return load_library(library).version


__all__ = [
    "ABI_VERSION",
    "Cancelled",
    "InvalidArgument",
    "InvalidImage",
    "InvalidModel",
    "Io",
    "Library",
    "LibraryError",
    "Model",
    "runtime_info",
    "set_log_handler",
    "write_bundle",
    "NnunetRtError",
    "NullArgument",
    "OutOfMemory",
    "Panic",
    "Poisoned",
    "Prediction",
    "RuntimeError_",
    "RuntimeUnavailable",
    "ShapeMismatch",
    "UnsupportedModel",
    "as_volume_array",
    "library_version",
    "load_library",
]
