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

import dataclasses
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
    #: float32 (labels, k, j, i) softmax when asked for, else None.
    probabilities: Optional[np.ndarray] = None


def segment_volume(
    model,
    volume_kji,
    ijk_to_ras,
    *,
    step_size: float = 0.5,
    tta: bool = True,
    classification_policy: str = "lesion-voxels",
    roi_focus: bool = False,
    probabilities: bool = False,
    progress: Optional[Callable[[str, float], Optional[bool]]] = None,
) -> SegmentationOutput:
    """Segments a Slicer volume array (k, j, i), or a list of them (one per model channel, same
    grid), whose geometry is ``ijk_to_ras``. ``probabilities`` also returns the per-label softmax
    (labels, k, j, i) on the same grid in ``SegmentationOutput.probabilities``."""
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
        roi_focus=roi_focus,
        probabilities=probabilities,
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
        probabilities=prediction.probabilities,
    )


# -- background runs --------------------------------------------------------------------------


class SegmentationTask:
    """Runs :func:`segment_volume` on a worker thread; the GUI polls it from its own thread.

    ``model`` is an ``nnunet_rt.Model`` or a callable returning one (called on the worker, so
    loading does not block the GUI either; the loaded model is then in ``self.model``).
    :meth:`cancel` interrupts the network pass in progress (on ONNX Runtime's CPU provider; on
    OpenVINO the pass finishes first) and makes the next progress report return False; ``error``
    then holds ``nnunet_rt.Cancelled``. Nothing here touches Qt or the MRML scene.
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
        self._stages = {stage: 0.0 for stage in STAGE_SPANS}
        self._thread = threading.Thread(target=self._run, name="nnunet-rt segmentation", daemon=True)
        self.result: Optional[SegmentationOutput] = None
        self.error: Optional[BaseException] = None

    def start(self) -> "SegmentationTask":
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Asks the run to stop (safe from any thread): the library interrupts the network pass in
        progress where it can (``Model.cancel``), and the next progress report stops the rest."""
        self._cancel.set()
        model = self.model
        if model is not None and hasattr(model, "cancel"):
            try:
                model.cancel()
            except Exception:  # closed, or a stand-in without a native model: the progress check stops it
                pass

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

    @property
    def stage_progress(self) -> dict:
        """Fraction done of each stage: {"preprocess": f, "network": f, "export": f}."""
        with self._lock:
            return dict(self._stages)

    def _report(self, stage: str, fraction: float) -> bool:
        with self._lock:
            self._stage, self._fraction = stage, fraction
            # A stage reported means the ones before it are complete.
            for earlier in STAGE_SPANS:
                if earlier == stage:
                    break
                self._stages[earlier] = 1.0
            self._stages[stage] = fraction
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


def stage_text(stages: dict) -> str:
    """"Preprocess 100% · Network 45% · Export 0%" from :attr:`SegmentationTask.stage_progress`."""
    return " \u00b7 ".join(f"{stage.capitalize()} {stages.get(stage, 0.0) * 100:.0f}%" for stage in STAGE_SPANS)


# -- model choice and cache -------------------------------------------------------------------


def parse_folds(text: str) -> Optional[list]:
    """Fold names from "0,1 2" or "all"; None (every exported fold) for an empty text."""
    folds = [f for f in str(text).replace(",", " ").split() if f]
    return folds or None


def model_kind(path) -> Optional[str]:
    """"folder" for an nnU-Net model folder, "bundle" for a file (a ``.nnrt`` bundle the library
    loads), None when the path does not exist."""
    if not path:
        return None
    path = Path(path)
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "bundle"
    return None


@dataclass(frozen=True)
class ModelOptions:
    """What a loaded model depends on; two runs with equal options share one loaded model."""

    path: str
    folds: Optional[tuple] = None
    device: str = "auto"
    network_precision: str = "f32"
    threads: Optional[int] = None
    postprocessing: bool = True
    previous_stage_model: Optional[str] = None

    def load(self, nnunet_rt=None):
        """Loads the model (call it on a worker thread: it can take seconds)."""
        nnunet_rt = nnunet_rt or import_nnunet_rt()
        return nnunet_rt.Model(
            self.path,
            folds=list(self.folds) if self.folds else None,
            device=self.device,
            network_precision=self.network_precision,
            threads=self.threads,
            postprocessing=None if self.postprocessing else False,
            previous_stage_model=self.previous_stage_model or None,
        )


class ModelCache:
    """Loaded models kept between runs, keyed by :class:`ModelOptions` (path + options).

    Used from the GUI thread only: :meth:`source` gives a SegmentationTask the cached model or a
    loader for the worker, :meth:`keep` stores what the worker loaded once the task is done.
    """

    def __init__(self):
        self._models = {}

    def __contains__(self, options: ModelOptions) -> bool:
        return options in self._models

    def get(self, options: ModelOptions):
        return self._models.get(options)

    def load(self, options: ModelOptions):
        """The cached model, else loads it now (on this thread) and caches it."""
        model = self._models.get(options)
        if model is None:
            model = self._models[options] = options.load()
        return model

    def source(self, options: ModelOptions):
        """The cached model, or a callable that loads it."""
        model = self._models.get(options)
        return model if model is not None else options.load

    def keep(self, options: ModelOptions, task) -> None:
        """Caches the task's model, unless a panic left it unusable (then it is closed)."""
        nnunet_rt = import_nnunet_rt()
        if isinstance(task.error, (nnunet_rt.Panic, nnunet_rt.Poisoned)):
            model = self._models.pop(options, None) or task.model
            if model is not None:
                model.close()
        elif task.model is not None:
            self._models[options] = task.model

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()


def channel_names(model_path, count: int) -> list:
    """Names of the model's input channels: ``channel_names`` of a model folder's dataset.json,
    else "channel 0", "channel 1", ... (a bundle, or a folder without them)."""
    names = {}
    path = Path(model_path) if model_path else None
    if path is not None and path.is_dir():
        try:
            import json

            with open(path / "dataset.json", encoding="utf-8") as f:
                names = json.load(f).get("channel_names", {}) or {}
        except (OSError, ValueError):
            names = {}
    return [str(names.get(str(i), f"channel {i}")) for i in range(int(count))]


def describe_folder(path) -> dict:
    """{"channels": [...], "summary": "..."} of an nnU-Net model folder, from its dataset.json and
    fold folders, without loading it."""
    import json

    path = Path(path)
    try:
        with open(path / "dataset.json", encoding="utf-8") as f:
            dataset = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} has no readable dataset.json ({exc})") from None
    channels = channel_names(path, len(dataset.get("channel_names", {})) or 1)
    labels = [name for name in dataset.get("labels", {}) if name != "background"]
    folds = sorted(p.name[len("fold_"):] for p in path.glob("fold_*") if (p / "model.onnx").is_file())
    summary = f"{len(channels)} channel(s) ({', '.join(channels)}); labels {', '.join(labels)}; folds {', '.join(folds) or 'none exported'}"
    return {"channels": channels, "summary": summary}


def describe_model(model, path) -> dict:
    """The same as :func:`describe_folder` for a loaded model (e.g. from a bundle)."""
    channels = channel_names(path, model.num_channels)
    summary = f"{len(channels)} channel(s); labels {', '.join(model.labels[1:])}; folds {', '.join(model.folds)}"
    if model.classes:
        summary += f"; classes {', '.join(model.classes)}"
    return {"channels": channels, "summary": summary}


# -- estimate before a run --------------------------------------------------------------------


@dataclass(frozen=True)
class RunEstimate:
    """What a run will cost, worked out from the model's plan before it starts."""

    model_shape: tuple  # voxels (x, y, z) after resampling to the model's spacing
    tiles: int  # sliding-window positions
    evaluations: int  # network evaluations: tiles x folds x mirrorings
    peak_bytes: int  # peak of the library's own arrays (the network's workspace not included)
    seconds: Optional[float]  # at the rate of the last run of this model; None before one
    #: True when peak_bytes is the library's own estimate (Model.estimate_peak_bytes), False for
    #: this module's upper bound.
    memory_from_library: bool = False

    def text(self) -> str:
        mib = self.peak_bytes / (1 << 20)
        memory = f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"
        time = f"~{self.seconds:.0f} s" if self.seconds is not None else "time known after the first run"
        return (
            f"{self.evaluations} network evaluations ({self.tiles} tiles), about {memory} of arrays, {time}"
        )


def _steps(image: int, patch: int, step_size: float) -> int:
    """Window positions along one axis, as nnU-Net's compute_steps_for_sliding_window."""
    if image <= patch:
        return 1
    target = patch * step_size
    return int(np.ceil((image - patch) / target)) + 1


def estimate_run(
    shape_xyz,
    spacing_xyz,
    model_spacing_xyz,
    patch_size_xyz,
    *,
    num_labels: int,
    num_folds: int,
    channels: int = 1,
    tta: bool = True,
    mirror_axes: int = 3,
    step_size: float = 0.5,
    probabilities: bool = False,
    seconds_per_evaluation: Optional[float] = None,
) -> RunEstimate:
    """A run's cost before it starts: the volume resampled to the model's spacing, the
    sliding-window tiles nnU-Net would place on it, the network evaluations (tiles x folds x
    2^mirror axes with TTA) and the memory of the arrays the library holds at its peak (the
    resampled input, the f32 logits accumulator and its weights, the logits resampled back,
    labels and the optional probabilities). The network's own workspace (ONNX Runtime) is not
    counted. Without cropping (the library crops to the non-zero box first) this is an upper
    bound."""
    shape = np.asarray(shape_xyz, dtype=np.float64)
    ratio = np.asarray(spacing_xyz, dtype=np.float64) / np.asarray(model_spacing_xyz, dtype=np.float64)
    model_shape = tuple(int(v) for v in np.maximum(np.round(shape * ratio), 1))
    patch = tuple(int(p) for p in patch_size_xyz)
    padded = [max(s, p) for s, p in zip(model_shape, patch)]
    tiles = int(np.prod([_steps(s, p, step_size) for s, p in zip(padded, patch)]))
    mirrors = 2 ** int(mirror_axes) if tta else 1
    evaluations = tiles * max(int(num_folds), 1) * mirrors
    model_voxels = float(np.prod(padded))
    input_voxels = float(np.prod(shape))
    peak = (
        channels * model_voxels * 4  # resampled, normalised input
        + num_labels * model_voxels * 4  # logits accumulator
        + model_voxels * 4  # Gaussian weights accumulator
        + num_labels * input_voxels * 4  # logits resampled to the input grid
        + input_voxels * 2  # labels
        + (num_labels * input_voxels * 4 if probabilities else 0)
    )
    seconds = None if seconds_per_evaluation is None else evaluations * float(seconds_per_evaluation)
    return RunEstimate(model_shape, tiles, evaluations, int(peak), seconds)


def estimate_for_model(model, shape_kji, ijk_to_ras, *, channels: int = 1, tta=True, step_size=0.5,
                       probabilities=False, seconds_per_evaluation=None) -> RunEstimate:
    """:func:`estimate_run` for a loaded ``nnunet_rt.Model`` and a Slicer volume's shape (k, j, i)
    and IJKToRAS."""
    geometry = itk_geometry_from_ijk_to_ras(ijk_to_ras)
    k, j, i = shape_kji[-3:]
    estimate = estimate_run(
        (i, j, k),
        geometry.spacing,
        model.spacing,
        model.patch_size,
        num_labels=len(model.labels),
        num_folds=len(model.folds),
        channels=channels,
        tta=tta,
        step_size=step_size,
        probabilities=probabilities,
        seconds_per_evaluation=seconds_per_evaluation,
    )
    if hasattr(model, "estimate_peak_bytes"):
        # The library's own figure (what its memory_limit compares with), where it has one.
        shape = (int(channels), k, j, i) if channels > 1 else (k, j, i)
        peak = model.estimate_peak_bytes(shape, geometry.spacing, probabilities=probabilities)
        estimate = dataclasses.replace(estimate, peak_bytes=int(peak), memory_from_library=True)
    return estimate


def seconds_per_evaluation(output: SegmentationOutput, estimate: RunEstimate) -> Optional[float]:
    """The measured rate of a finished run, to estimate the next one."""
    total = sum(output.prediction.timings_ms.values()) / 1000.0
    return total / estimate.evaluations if estimate.evaluations else None
