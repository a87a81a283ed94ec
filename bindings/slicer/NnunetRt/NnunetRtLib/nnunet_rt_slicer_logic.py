"""Slicer-free logic of the NnunetRt module (numpy only; nnunet_rt is imported when needed).

Slicer holds a scalar volume as an array indexed (k, j, i) (i fastest in memory) plus an
IJKToRAS 4x4 matrix. nnunet-rt takes the same memory with ITK geometry: spacing, origin and
direction in LPS. The conversion is exact and reversible:

    IJKToLPS = diag(-1, -1, 1, 1) @ IJKToRAS
    spacing[c]      = |column c of IJKToLPS[:3, :3]|
    direction[:, c] = column c / spacing[c]          (ITK's GetDirection(), row-major)
    origin          = IJKToLPS[:3, 3]

The label map comes back on the input grid, so it shares the input's IJKToRAS.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

_RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Share of the progress bar given to each stage (preprocess, network, export).
STAGE_SPANS = {"preprocess": (0.0, 0.1), "network": (0.1, 0.95), "export": (0.95, 1.0)}

#: Segment colours (RGB in [0, 1]), cycled over the foreground labels.
PALETTE = (
    (0.90, 0.30, 0.24),
    (0.18, 0.63, 0.35),
    (0.20, 0.45, 0.85),
    (0.95, 0.77, 0.06),
    (0.61, 0.35, 0.71),
    (0.10, 0.74, 0.76),
    (0.90, 0.49, 0.13),
    (0.83, 0.33, 0.60),
    (0.55, 0.60, 0.25),
    (0.50, 0.33, 0.22),
)


def import_nnunet_rt():
    """Imports the ``nnunet_rt`` package: the installed one, else the copy in this source
    checkout (``bindings/python`` next to ``bindings/slicer``)."""
    try:
        import nnunet_rt
    except ImportError:
        checkout = Path(__file__).resolve().parents[3] / "python"  # bindings/python
        if not (checkout / "nnunet_rt" / "__init__.py").is_file():
            raise ImportError(
                "the nnunet_rt Python package is not installed; install it into Slicer's Python with "
                "slicer.util.pip_install('-e /path/to/nnunet-rt/bindings/python')"
            ) from None
        sys.path.insert(0, str(checkout))
        import nnunet_rt
    return nnunet_rt


# -- geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItkGeometry:
    """ITK image geometry: spacing and origin along (x, y, z) in mm, direction 3x3 row-major
    (columns are the index axes' unit vectors), all in LPS."""

    spacing: tuple
    origin: tuple
    direction: tuple


def itk_geometry_from_ijk_to_ras(ijk_to_ras) -> ItkGeometry:
    """ITK geometry (LPS) of a Slicer volume from its IJKToRAS matrix."""
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"IJKToRAS must be a 4x4 matrix; got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("IJKToRAS contains NaN or infinite values")
    if not np.allclose(matrix[3], (0.0, 0.0, 0.0, 1.0)):
        raise ValueError(f"IJKToRAS is not affine: last row {matrix[3].tolist()}")
    lps = _RAS_FROM_LPS @ matrix
    linear = lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise ValueError(f"IJKToRAS has a zero column: spacing {spacing.tolist()}")
    direction = linear / spacing
    return ItkGeometry(
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in lps[:3, 3]),
        direction=tuple(float(d) for d in direction.reshape(-1)),
    )


def ijk_to_ras_from_itk_geometry(spacing, origin, direction) -> np.ndarray:
    """The IJKToRAS matrix of an ITK geometry (LPS); the inverse of
    :func:`itk_geometry_from_ijk_to_ras`."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) * np.asarray(spacing, dtype=np.float64)
    lps[:3, 3] = np.asarray(origin, dtype=np.float64)
    return _RAS_FROM_LPS @ lps


# -- segments and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentSpec:
    """One segment to create: its name, the label value it covers and its colour (RGB 0..1)."""

    name: str
    value: int
    color: tuple


def build_segments(label_names: Sequence[str]) -> list:
    """One segment per foreground label (label 0, the background, is skipped)."""
    return [
        SegmentSpec(name=str(name), value=value, color=PALETTE[(value - 1) % len(PALETTE)])
        for value, name in enumerate(label_names)
        if value != 0
    ]


def class_rows(prediction) -> list:
    """(class name, probability) for every class of the head, in the model's order; [] without."""
    if prediction.class_probabilities is None:
        return []
    return [(name, float(p)) for name, p in zip(prediction.class_names, prediction.class_probabilities)]


def subtype_text(prediction) -> str:
    """"subtype1 (p = 0.364)" for a model with a classification head, "" otherwise."""
    if prediction.predicted_class is None:
        return ""
    probability = float(prediction.class_probabilities[prediction.predicted_class])
    return f"{prediction.predicted_class_name} (p = {probability:.3f})"


def overall_fraction(stage: str, fraction: float) -> float:
    """Position of (stage, fraction-within-stage) on a single 0..1 progress bar."""
    start, end = STAGE_SPANS.get(stage, (0.0, 1.0))
    return start + (end - start) * min(max(float(fraction), 0.0), 1.0)


@dataclass
class SegmentationOutput:
    """A finished run: labels (k, j, i) on the input grid with the input's IJKToRAS."""

    labels: np.ndarray
    ijk_to_ras: np.ndarray
    geometry: ItkGeometry
    prediction: object
    segments: list
    subtype: str
    classes: list = field(default_factory=list)


def segment_volume(
    model,
    volume_kji,
    ijk_to_ras,
    *,
    step_size: float = 0.5,
    tta: bool = True,
    classification_policy: str = "lesion-voxels",
    progress: Optional[Callable[[str, float], Optional[bool]]] = None,
) -> SegmentationOutput:
    """Segments a Slicer volume array (k, j, i), or a list of them (one per model channel, same
    grid), whose geometry is ``ijk_to_ras``."""
    if isinstance(volume_kji, (list, tuple)):
        volume = np.stack([np.asarray(v) for v in volume_kji])
    else:
        volume = volume_kji
    geometry = itk_geometry_from_ijk_to_ras(ijk_to_ras)
    prediction = model.predict(
        volume,
        geometry.spacing,
        geometry.origin,
        geometry.direction,
        step_size=step_size,
        tta=tta,
        classification_policy=classification_policy,
        progress=progress,
    )
    return SegmentationOutput(
        labels=prediction.labels,
        ijk_to_ras=np.array(ijk_to_ras, dtype=np.float64),
        geometry=geometry,
        prediction=prediction,
        segments=build_segments(prediction.label_names),
        subtype=subtype_text(prediction),
        classes=class_rows(prediction),
    )


# -- background runs --------------------------------------------------------------------------


class SegmentationTask:
    """Runs :func:`segment_volume` on a worker thread; the GUI polls it from its own thread.

    ``model`` is an ``nnunet_rt.Model`` or a callable returning one (called on the worker, so
    loading does not block the GUI either; the loaded model is then in ``self.model``).
    :meth:`cancel` makes the next progress report return False: the run stops within one tile
    and ``error`` holds ``nnunet_rt.Cancelled``. Nothing here touches Qt or the MRML scene.
    """

    def __init__(self, model, volume_kji, ijk_to_ras, **options):
        self._model_source = model
        self.model = None if callable(model) and not hasattr(model, "predict") else model
        self._volume = volume_kji
        self._ijk_to_ras = np.array(ijk_to_ras, dtype=np.float64)
        self._options = options
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._stage = "loading"
        self._fraction = 0.0
        self._thread = threading.Thread(target=self._run, name="nnunet-rt segmentation", daemon=True)
        self.result: Optional[SegmentationOutput] = None
        self.error: Optional[BaseException] = None

    def start(self) -> "SegmentationTask":
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Asks the run to stop (safe from any thread)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for the run to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def progress(self) -> tuple:
        """(stage, fraction within the stage, overall fraction); stage "loading" before the run."""
        with self._lock:
            stage, fraction = self._stage, self._fraction
        overall = 0.0 if stage == "loading" else overall_fraction(stage, fraction)
        return stage, fraction, overall

    def _report(self, stage: str, fraction: float) -> bool:
        with self._lock:
            self._stage, self._fraction = stage, fraction
        return not self._cancel.is_set()

    def _run(self) -> None:
        try:
            if self.model is None:
                self.model = self._model_source()
            if self._cancel.is_set():
                raise import_nnunet_rt().Cancelled(11, "cancelled before the run started")
            self.result = segment_volume(self.model, self._volume, self._ijk_to_ras, progress=self._report, **self._options)
        except BaseException as exc:  # handed to the GUI thread
            self.error = exc
        finally:
            self._volume = None
