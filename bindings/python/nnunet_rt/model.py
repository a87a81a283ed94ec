"""Model and Prediction: the numpy-facing API over the C ABI."""

from __future__ import annotations

import ctypes
import json
import os
import threading
from contextlib import contextmanager
from ctypes import byref, c_char_p, c_double, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from . import _lib
from ._lib import Library, load_library
from .errors import Cancelled, InvalidArgument, NnunetRtError, error_for

#: ``progress(stage, fraction)``: stage is "preprocess", "network" or "export"; fraction in [0, 1]
#: within the stage. Returning False (or any false value other than None) cancels.
ProgressCallback = Callable[[str, float], Optional[bool]]

STAGES = {
    _lib.NNRT_STAGE_PREPROCESS: "preprocess",
    _lib.NNRT_STAGE_NETWORK: "network",
    _lib.NNRT_STAGE_EXPORT: "export",
}

#: numpy dtypes passed to the library without conversion (native byte order).
DTYPE_CODES = {
    np.dtype(np.uint8): _lib.NNRT_DTYPE_U8,
    np.dtype(np.int8): _lib.NNRT_DTYPE_I8,
    np.dtype(np.uint16): _lib.NNRT_DTYPE_U16,
    np.dtype(np.int16): _lib.NNRT_DTYPE_I16,
    np.dtype(np.uint32): _lib.NNRT_DTYPE_U32,
    np.dtype(np.int32): _lib.NNRT_DTYPE_I32,
    np.dtype(np.float32): _lib.NNRT_DTYPE_F32,
    np.dtype(np.float64): _lib.NNRT_DTYPE_F64,
}

_LABEL_DTYPES = {_lib.NNRT_DTYPE_U8: np.dtype(np.uint8), _lib.NNRT_DTYPE_U16: np.dtype(np.uint16)}

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

PathLike = Union[str, "os.PathLike[str]"]


def _raise_for(lib: Library, status: int) -> None:
    if status != _lib.NNRT_OK:
        raise _error(lib, status)


def _error(lib: Library, status: int) -> NnunetRtError:
    """The exception for a failed call. Must run on the failing thread, before any other call."""
    message = lib.nnrt_last_error_message().decode("utf-8", "replace")
    name = lib.nnrt_status_str(status).decode("utf-8", "replace")
    return error_for(status, message, name)


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(_lib.NNRT_INVALID_ARGUMENT, message)


def _target_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the library receives for an array of ``dtype``."""
    native = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
    if native in DTYPE_CODES:
        return native
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind == "f" and dtype.itemsize < 4:
        return np.dtype(np.float32)
    if dtype.kind in "iuf":
        return np.dtype(np.float64)
    raise _invalid(f"volume dtype {dtype} is not supported (use an integer or floating-point array)")


def as_volume_array(array) -> np.ndarray:
    """The array handed to the library: ``array`` itself when it is a C-contiguous, aligned,
    native-order array of a supported dtype (u8, i8, u16, i16, u32, i32, f32, f64), otherwise one
    contiguous copy (bool → u8, float16 → f32, other integers → f64)."""
    a = np.asarray(array)
    if a.ndim not in (3, 4):
        raise _invalid(f"volume must be a (z, y, x) or (channels, z, y, x) array; got shape {a.shape}")
    target = _target_dtype(a.dtype)
    if a.dtype == target and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.ascontiguousarray(a, dtype=target)


def _vector(values, length: int, name: str) -> tuple:
    try:
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise _invalid(f"{name} must be {length} numbers; got {values!r}") from exc
    if flat.size != length:
        raise _invalid(f"{name} must be {length} numbers; got {flat.size}")
    return tuple(float(v) for v in flat)


def _copy_out(address: int, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """A numpy copy, of ``shape``, of the ``dtype`` elements at ``address`` (memory owned by a
    result, which is freed afterwards)."""
    count = int(np.prod(shape))
    if count == 0:
        return np.empty(shape, dtype=dtype)
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()


class _Handle:
    """An owned C pointer that is freed once: at close, or when the last call using it ends."""

    def __init__(self, pointer: c_void_p, free: Callable[[c_void_p], None]):
        self._pointer = pointer
        self._free = free
        self._lock = threading.Lock()
        self._users = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def use(self) -> Iterator[c_void_p]:
        with self._lock:
            if self._closed:
                raise _invalid("the model is closed")
            self._users += 1
        try:
            yield self._pointer
        finally:
            with self._lock:
                self._users -= 1
                release = self._closed and self._users == 0
            if release:
                self._release()

    def close(self, cancel: Optional[Callable[[c_void_p], int]] = None) -> None:
        """Closes the handle; with users (a call running on another thread), `cancel` is asked to
        stop them and the last one frees the pointer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            release = self._users == 0
            if not release and cancel is not None:
                cancel(self._pointer)
        if release:
            self._release()

    def _release(self) -> None:
        pointer, self._pointer = self._pointer, None
        if pointer is not None and pointer.value:
            self._free(pointer)


class Prediction:
    """The outputs of :meth:`Model.predict`, copied out of the library (no C memory is kept).

    Attributes:
        labels: label map, shape (z, y, x), uint8 (uint16 past 256 labels), the input's grid.
        probabilities: float32 (labels, z, y, x) softmax, or None unless requested.
        class_probabilities: float64 (classes,) case-level probabilities, or None without a head.
        predicted_class: index of the predicted class, or None without a head.
        predicted_class_name: its name, or None without a head.
        class_names: the head's class names ([] without a head).
        label_names: the model's label names, index = label value.
        timings_ms: {"preprocess": ms, "network": ms, "export": ms}.
    """

    __slots__ = (
        "labels",
        "probabilities",
        "class_probabilities",
        "predicted_class",
        "predicted_class_name",
        "class_names",
        "label_names",
        "timings_ms",
    )

    def __init__(
        self,
        labels: np.ndarray,
        probabilities: Optional[np.ndarray],
        class_probabilities: Optional[np.ndarray],
        predicted_class: Optional[int],
        class_names: list,
        label_names: list,
        timings_ms: dict,
    ):
        self.labels = labels
        self.probabilities = probabilities
        self.class_probabilities = class_probabilities
        self.predicted_class = predicted_class
        self.predicted_class_name = None if predicted_class is None else class_names[predicted_class]
        self.class_names = class_names
        self.label_names = label_names
        self.timings_ms = timings_ms

    def label_counts(self) -> dict:
        """Voxel count per label name (every label, zero counts included)."""
        counts = np.bincount(self.labels.reshape(-1), minlength=len(self.label_names))
        return {name: int(counts[i]) for i, name in enumerate(self.label_names)}

    def __repr__(self) -> str:
        head = ""
        if self.predicted_class is not None:
            p = float(self.class_probabilities[self.predicted_class])
            head = f", predicted_class={self.predicted_class_name!r} ({p:.3f})"
        return f"<nnunet_rt.Prediction labels={self.labels.shape} {self.labels.dtype}{head}>"


class Model:
    """A loaded nnU-Net v2 model folder (plans.json, dataset.json, fold_N/model.onnx), or a model
    bundle file (``.nnrt``, written by ``nnunet-rt bundle`` or :func:`nnunet_rt.write_bundle`);
    :meth:`from_bundle_bytes` loads a bundle held in memory.

    ``folds`` selects folds by name (``["0", "1"]``, ``["all"]``; ints are accepted) in the
    order their logits are averaged; None uses every exported fold. ``device`` is ``"auto"``
    (OpenVINO on the CPU when its plugin loads, else ONNX Runtime's CPU provider), ``"cpu"``,
    ``"openvino"``, ``"cuda"`` or ``"cuda:N"``; :attr:`runtime_info` says what ran.
    ``network_precision`` is ``"f32"`` (nnU-Net's answer) or the opt-in ``"bf16"`` (OpenVINO on
    CPUs with AVX512_BF16/AMX; changes a few voxels). ``threads`` is the network's thread count
    (None: one per core). ``tf32`` allows TF32 convolutions on CUDA. ``ort_library`` is the path of
    ``libonnxruntime.so`` (only the first model loaded in a process decides it),
    ``openvino_library`` that of the OpenVINO plugin, ``openvino_cache_dir`` a folder for
    OpenVINO's compiled networks. ``postprocessing`` is a ``postprocessing.json`` applied instead
    of the folder's own, or ``False`` for none (default ``None``: the folder's own, if any).
    ``path`` may also be a dataset's results folder with the ``inference_information.json`` of
    ``nnUNetv2_find_best_configuration``. A cascade stage finds its previous stage in nnU-Net's
    sibling folder, or in ``previous_stage_model``. ``library`` is the path of the nnunet-rt library (see
    :func:`nnunet_rt.load_library`).

    A model may be used from several threads; predictions on one model run one at a time (load
    one model per thread for parallel runs); :meth:`cancel` stops them from any thread. Close it
    with :meth:`close` or a ``with`` block; any use after that raises
    :class:`~nnunet_rt.InvalidArgument`.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        folds: Optional[Sequence[Union[str, int]]] = None,
        device: str = "auto",
        network_precision: str = "f32",
        threads: Optional[int] = None,
        tf32: bool = False,
        ort_library: Optional[PathLike] = None,
        openvino_library: Optional[PathLike] = None,
        openvino_cache_dir: Optional[PathLike] = None,
        postprocessing: Union[None, bool, PathLike] = None,
        previous_stage_model: Optional[PathLike] = None,
        library: Optional[PathLike] = None,
    ):
        self._handle = None
        self.path = os.fspath(path)
        path_bytes = os.fsencode(self.path)
        self._open(
            lambda lib, options, pointer: lib.nnrt_model_load(path_bytes, options, byref(pointer)),
            folds=folds, device=device, network_precision=network_precision, threads=threads, tf32=tf32,
            ort_library=ort_library, openvino_library=openvino_library, openvino_cache_dir=openvino_cache_dir,
            postprocessing=postprocessing, previous_stage_model=previous_stage_model, library=library,
        )

    @classmethod
    def ensemble(cls, paths: Sequence[PathLike], **options) -> "Model":
        """An ensemble of model folders, predicted as ``nnUNetv2_ensemble`` combines them (the
        members' probabilities averaged, then labelled); no postprocessing unless
        ``postprocessing`` names a file. ``options`` are the constructor's keywords and apply to
        every member."""
        paths = [os.fspath(p) for p in paths]
        names = (c_char_p * len(paths))(*[os.fsencode(p) for p in paths])
        return cls._opened(
            os.pathsep.join(paths),
            lambda lib, handle, pointer: lib.nnrt_model_load_ensemble(names, len(paths), handle, byref(pointer)),
            options,
        )

    @classmethod
    def from_bundle_bytes(cls, data, **options) -> "Model":
        """Loads a model bundle from memory (e.g. decrypted by the application), never touching
        the disk; ``data`` is any bytes-like object and is not kept. ``options`` are the
        constructor's keywords (a bundle carries its own previous stage)."""
        view = memoryview(data).cast("B")
        # One copy into C memory: ctypes cannot pass a read-only buffer (bytes) by address.
        buffer = (ctypes.c_ubyte * len(view)).from_buffer_copy(view)
        return cls._opened(
            "<bundle in memory>",
            lambda lib, handle, pointer: lib.nnrt_model_load_from_memory(buffer, len(view), handle, byref(pointer)),
            options,
        )

    @classmethod
    def _opened(cls, path: str, load, options: dict) -> "Model":
        model = cls.__new__(cls)
        model._handle = None
        model.path = path
        model._open(load, **options)
        return model

    def _open(
        self,
        load,
        *,
        folds=None,
        device="auto",
        network_precision="f32",
        threads=None,
        tf32=False,
        ort_library=None,
        openvino_library=None,
        openvino_cache_dir=None,
        postprocessing=None,
        previous_stage_model=None,
        library=None,
    ) -> None:
        lib = load_library(library)
        self._lib = lib
        options = c_void_p()
        _raise_for(lib, lib.nnrt_options_new(byref(options)))
        try:
            self._configure(
                options, folds, device, network_precision, threads, tf32, ort_library, openvino_library, openvino_cache_dir
            )
            if previous_stage_model is not None:
                path_bytes = os.fsencode(os.fspath(previous_stage_model))
                _raise_for(lib, lib.nnrt_options_set_previous_stage_model(options, path_bytes))
            if postprocessing is False:
                _raise_for(lib, lib.nnrt_options_set_skip_postprocessing(options, 1))
            elif postprocessing is not None and postprocessing is not True:
                path_bytes = os.fsencode(os.fspath(postprocessing))
                _raise_for(lib, lib.nnrt_options_set_postprocessing_file(options, path_bytes))
            pointer = c_void_p()
            status = load(lib, options, pointer)
            if status != _lib.NNRT_OK:
                raise _error(lib, status)
        finally:
            lib.nnrt_options_free(options)
        self._handle = _Handle(pointer, lib.nnrt_model_free)
        try:
            self._read_metadata(pointer)
        except BaseException:
            self._handle.close()
            raise

    def _configure(
        self, options, folds, device, network_precision, threads, tf32, ort_library, openvino_library, openvino_cache_dir
    ) -> None:
        lib = self._lib
        _set_folds(lib, options, folds)
        # Names are the library's own (auto, cpu, openvino, cuda, cuda:N; f32, bf16): it parses them.
        _raise_for(lib, lib.nnrt_options_set_device_name(options, _name(device, "device")))
        _raise_for(lib, lib.nnrt_options_set_network_precision_name(options, _name(network_precision, "network precision")))
        _raise_for(lib, lib.nnrt_options_set_tf32(options, 1 if tf32 else 0))
        if openvino_library is not None:
            _raise_for(lib, lib.nnrt_options_set_openvino_library(options, os.fsencode(os.fspath(openvino_library))))
        if openvino_cache_dir is not None:
            _raise_for(lib, lib.nnrt_options_set_openvino_cache_dir(options, os.fsencode(os.fspath(openvino_cache_dir))))
        if threads is not None:
            if int(threads) < 0:
                raise _invalid(f"threads must be >= 0 (0: one per core); got {threads}")
            _raise_for(lib, lib.nnrt_options_set_threads(options, int(threads)))
        if ort_library is not None:
            _raise_for(lib, lib.nnrt_options_set_ort_library(options, os.fsencode(os.fspath(ort_library))))

    def _read_metadata(self, model: c_void_p) -> None:
        lib = self._lib

        def size(function) -> int:
            value = c_size_t()
            _raise_for(lib, function(model, byref(value)))
            return value.value

        def names(count_function, name_function) -> list:
            out = []
            for i in range(size(count_function)):
                text = c_char_p()
                _raise_for(lib, name_function(model, i, byref(text)))
                out.append(text.value.decode("utf-8", "replace"))
            return out

        self._channels = names(lib.nnrt_model_num_channels, lib.nnrt_model_channel_name)
        self._num_channels = len(self._channels)
        self._labels = names(lib.nnrt_model_num_labels, lib.nnrt_model_label_name)
        self._classes = names(lib.nnrt_model_num_classes, lib.nnrt_model_class_name)
        self._folds = names(lib.nnrt_model_num_folds, lib.nnrt_model_fold_name)
        spacing = (c_double * 3)()
        _raise_for(lib, lib.nnrt_model_spacing(model, spacing))
        self._spacing = tuple(spacing)
        patch = (c_size_t * 3)()
        _raise_for(lib, lib.nnrt_model_patch_size(model, patch))
        self._patch_size = tuple(patch)
        info = c_char_p()
        _raise_for(lib, lib.nnrt_model_runtime_info(model, byref(info)))
        self._runtime_info = json.loads(info.value.decode("utf-8"))

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Frees the model. Idempotent. A prediction running on another thread is cancelled
        (it raises :class:`~nnunet_rt.Cancelled`) and the model is freed when it has returned."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close(cancel=self._lib.nnrt_cancel)

    def cancel(self) -> None:
        """Cancels the predictions running on this model now, from any thread: each raises
        :class:`~nnunet_rt.Cancelled` promptly (the network pass in progress is interrupted).
        Predictions started afterwards run normally."""
        with self._handle_in_use() as model:
            _raise_for(self._lib, self._lib.nnrt_cancel(model))

    @property
    def closed(self) -> bool:
        return self._handle is None or self._handle.closed

    def __enter__(self) -> "Model":
        self._check_open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _check_open(self) -> None:
        if self.closed:
            raise _invalid("the model is closed")

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"folds={self._folds}, labels={self._labels}"
        return f"<nnunet_rt.Model {self.path!r} {state}>"

    # -- introspection ------------------------------------------------------------------------

    @property
    def library(self) -> Library:
        """The loaded nnunet-rt library."""
        return self._lib

    @property
    def num_channels(self) -> int:
        """Number of input channels (modalities) the model expects."""
        self._check_open()
        return self._num_channels

    @property
    def channel_names(self) -> list:
        """Input channel names (dataset.json ``channel_names``), in the order channels are read."""
        self._check_open()
        return list(self._channels)

    @property
    def labels(self) -> list:
        """Label names, background included; the index is the label value."""
        self._check_open()
        return list(self._labels)

    @property
    def classes(self) -> list:
        """Class names of the classification head; [] when the model has none."""
        self._check_open()
        return list(self._classes)

    @property
    def runtime_info(self) -> dict:
        """What the network runs on: ``device`` (after ``auto``), ``execution_provider``,
        ``network_precision``, ONNX Runtime's and OpenVINO's versions and paths, and why ``auto``
        fell back to ONNX Runtime's CPU provider (``auto_fallback_reason``)."""
        return self._runtime_info

    @property
    def folds(self) -> list:
        """Names of the folds in use, in averaging order."""
        self._check_open()
        return list(self._folds)

    @property
    def spacing(self) -> tuple:
        """The model's target spacing in mm along (x, y, z)."""
        self._check_open()
        return self._spacing

    @property
    def patch_size(self) -> tuple:
        """The network's patch size in voxels along (x, y, z)."""
        self._check_open()
        return self._patch_size

    # -- prediction ---------------------------------------------------------------------------

    def predict(
        self,
        array,
        spacing: Sequence[float],
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        direction=_IDENTITY,
        *,
        step_size: float = 0.5,
        tta: bool = True,
        probabilities: bool = False,
        classification_policy: str = "lesion-voxels",
        roi_focus: bool = False,
        precision: str = "half",
        memory_limit: Optional[int] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> Prediction:
        """Segments one volume.

        ``array`` is indexed (z, y, x), or (channels, z, y, x): in a C-contiguous array x varies
        fastest, the memory order of ITK, NIfTI and VTK (``sitk.GetArrayFromImage`` gives
        exactly this). ``spacing`` and ``origin`` are (x, y, z) in mm and ``direction`` the 3x3
        direction cosines (9 numbers, row-major, or a 3x3 array), as ITK's ``GetSpacing()``,
        ``GetOrigin()`` and ``GetDirection()`` report them (LPS). A C-contiguous array of u8,
        i8, u16, i16, u32, i32, f32 or f64 is read in place; anything else is copied once.

        ``step_size`` is the sliding-window step as a fraction of the patch; ``tta`` enables
        mirroring; ``probabilities`` also returns per-label softmax probabilities;
        ``classification_policy`` is ``"lesion-voxels"`` (tiles weighted by the lesion voxels
        they label), ``"lesion-weighted"`` (by soft lesion volume) or ``"mean"``; ``roi_focus`` (opt-in,
        not nnU-Net's algorithm) runs a cheap first pass and the full pass only near its
        foreground. ``precision`` is the logit accumulation: ``"half"`` (nnU-Net's float16, the
        same answer) or ``"single"``. ``memory_limit`` (bytes) refuses, before any work and with
        :class:`~nnunet_rt.OutOfMemory`, a prediction whose :meth:`estimate_peak_bytes` exceeds it.

        ``progress(stage, fraction)`` is called on this thread at stage boundaries and after
        every network pass; returning False cancels (:class:`~nnunet_rt.Cancelled` is raised
        before the next pass starts). An exception raised by the callback cancels the run and
        is re-raised here.
        """
        self._check_open()
        lib = self._lib
        volume_array = as_volume_array(array)
        volume = _describe(volume_array, spacing, origin, direction)
        volume.data = volume_array.ctypes.data
        policy = _name(classification_policy, "classification policy")
        if progress is not None and not callable(progress):
            raise _invalid("progress must be callable or None")

        failure: list = []

        def trampoline(stage: int, fraction: float, _user_data) -> int:
            # Runs inside nnrt_predict: nothing may propagate into C.
            if failure:
                return 1
            try:
                keep_going = progress(STAGES.get(stage, str(stage)), fraction)
                return 1 if keep_going is not None and not keep_going else 0
            except BaseException as exc:  # re-raised once nnrt_predict has returned
                failure.append(exc)
                return 1

        callback = _lib.PROGRESS_FN(trampoline) if progress is not None else None
        options = c_void_p()
        _raise_for(lib, lib.nnrt_predict_options_new(byref(options)))
        result = c_void_p()
        error = None
        try:
            _raise_for(lib, lib.nnrt_predict_options_set_step_size(options, float(step_size)))
            _raise_for(lib, lib.nnrt_predict_options_set_tta(options, 1 if tta else 0))
            _raise_for(lib, lib.nnrt_predict_options_set_probabilities(options, 1 if probabilities else 0))
            _raise_for(lib, lib.nnrt_predict_options_set_classification_policy_name(options, policy))
            _raise_for(lib, lib.nnrt_predict_options_set_roi_focus(options, 1 if roi_focus else 0))
            _raise_for(lib, lib.nnrt_predict_options_set_precision_name(options, _name(precision, "precision")))
            if memory_limit is not None:
                if int(memory_limit) <= 0:
                    raise _invalid(f"memory_limit must be a positive number of bytes; got {memory_limit}")
                _raise_for(lib, lib.nnrt_predict_options_set_memory_limit(options, int(memory_limit)))
            if callback is not None:
                _raise_for(lib, lib.nnrt_predict_options_set_progress(options, callback, None))
            with self._handle_in_use() as model:
                status = lib.nnrt_predict(model, byref(volume), options, byref(result))
                if status != _lib.NNRT_OK:
                    error = _error(lib, status)
        finally:
            lib.nnrt_predict_options_free(options)
        # `volume_array` and `callback` were kept alive until nnrt_predict returned.
        try:
            if failure:
                raise failure[0]
            if error is not None:
                raise error
            return self._prediction(result)
        finally:
            lib.nnrt_result_free(result)

    def estimate_peak_bytes(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        precision: str = "half",
        probabilities: bool = False,
    ) -> int:
        """Estimated peak memory (bytes) of predicting a volume of ``shape`` ((z, y, x) or
        (channels, z, y, x), as the array :meth:`predict` takes) at ``spacing`` (x, y, z, mm):
        what ``memory_limit`` compares with. The volume itself and ONNX Runtime's fixed working
        set come on top."""
        self._check_open()
        lib = self._lib
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (3, 4):
            raise _invalid(f"shape must be (z, y, x) or (channels, z, y, x); got {shape}")
        volume = _describe_shape(shape, spacing, (0.0, 0.0, 0.0), _IDENTITY)
        options = c_void_p()
        _raise_for(lib, lib.nnrt_predict_options_new(byref(options)))
        try:
            _raise_for(lib, lib.nnrt_predict_options_set_precision_name(options, _name(precision, "precision")))
            _raise_for(lib, lib.nnrt_predict_options_set_probabilities(options, 1 if probabilities else 0))
            bytes_out = c_uint64()
            with self._handle_in_use() as model:
                _raise_for(lib, lib.nnrt_estimate_peak_bytes(model, byref(volume), options, byref(bytes_out)))
        finally:
            lib.nnrt_predict_options_free(options)
        return bytes_out.value

    @contextmanager
    def _handle_in_use(self):
        if self._handle is None:
            raise _invalid("the model is closed")
        with self._handle.use() as pointer:
            yield pointer

    def _prediction(self, result: c_void_p) -> Prediction:
        lib = self._lib
        data = c_void_p()
        dtype = c_uint32()
        dims = (c_size_t * 3)()
        _raise_for(lib, lib.nnrt_result_labels(result, byref(data), byref(dtype), dims))
        x, y, z = dims
        label_dtype = _LABEL_DTYPES.get(dtype.value)
        if label_dtype is None:
            raise error_for(_lib.NNRT_INVALID_ARGUMENT, f"the library returned labels of unknown dtype code {dtype.value}")
        voxels = x * y * z
        labels = _copy_out(data.value, label_dtype, (z, y, x))

        count = c_size_t()
        _raise_for(lib, lib.nnrt_result_probabilities(result, byref(data), byref(count)))
        probabilities = None
        if count.value:
            if count.value % voxels:
                raise error_for(_lib.NNRT_INVALID_ARGUMENT, f"{count.value} probabilities do not fill {voxels}-voxel blocks")
            probabilities = _copy_out(data.value, np.dtype(np.float32), (count.value // voxels, z, y, x))

        num_classes = c_size_t()
        _raise_for(lib, lib.nnrt_result_num_classes(result, byref(num_classes)))
        class_probabilities = predicted = None
        class_names: list = []
        if num_classes.value:
            _raise_for(lib, lib.nnrt_result_class_probabilities(result, byref(data), byref(count)))
            class_probabilities = _copy_out(data.value, np.dtype(np.float64), (count.value,))
            index = c_size_t()
            _raise_for(lib, lib.nnrt_result_predicted_class(result, byref(index)))
            predicted = index.value
            for i in range(num_classes.value):
                name = c_char_p()
                _raise_for(lib, lib.nnrt_result_class_name(result, i, byref(name)))
                class_names.append(name.value.decode("utf-8", "replace"))

        label_names = []
        for i in range(len(self._labels)):
            name = c_char_p()
            _raise_for(lib, lib.nnrt_result_label_name(result, i, byref(name)))
            label_names.append(name.value.decode("utf-8", "replace"))

        timings = (c_double * 3)()
        _raise_for(lib, lib.nnrt_result_timings_ms(result, timings))
        return Prediction(
            labels=labels,
            probabilities=probabilities,
            class_probabilities=class_probabilities,
            predicted_class=predicted,
            class_names=class_names,
            label_names=label_names,
            timings_ms={"preprocess": timings[0], "network": timings[1], "export": timings[2]},
        )


def _describe_shape(shape: tuple, spacing, origin, direction) -> "_lib.nnrt_volume":
    """An ``nnrt_volume`` for an array of ``shape`` ((z, y, x) or (channels, z, y, x)), no data."""
    if len(shape) == 3:
        channels, (z, y, x) = 1, shape
    else:
        channels, z, y, x = shape
    volume = _lib.nnrt_volume()
    volume.dims[:] = (x, y, z)
    volume.channels = channels
    volume.spacing[:] = _vector(spacing, 3, "spacing")
    volume.origin[:] = _vector(origin, 3, "origin")
    volume.direction[:] = _vector(direction, 9, "direction")
    return volume


def _describe(array: np.ndarray, spacing, origin, direction) -> "_lib.nnrt_volume":
    """The ``nnrt_volume`` of a C-contiguous volume array (its data pointer set by the caller)."""
    volume = _describe_shape(array.shape, spacing, origin, direction)
    volume.dtype = DTYPE_CODES[array.dtype]
    return volume


def _set_folds(lib: Library, options: c_void_p, folds) -> None:
    """Selects folds by name (one name or int, or a sequence); None or [] keeps every fold."""
    if folds is None:
        return
    names = [str(f).encode("utf-8") for f in ([folds] if isinstance(folds, (str, int)) else folds)]
    if names:
        array = (c_char_p * len(names))(*names)
        _raise_for(lib, lib.nnrt_options_set_folds(options, array, len(names)))


def write_bundle(model_dir: PathLike, output: PathLike, *, folds=None, previous_stage_model=None, library=None) -> None:
    """Writes the model folder ``model_dir`` as one bundle file ``output`` (``.nnrt``), which
    :class:`Model` and :meth:`Model.from_bundle_bytes` load: plans, dataset, the folds (``None``:
    every exported one) with their ONNX models, the postprocessing, and a cascade's previous stage."""
    lib = load_library(library)
    options = c_void_p()
    _raise_for(lib, lib.nnrt_options_new(byref(options)))
    try:
        _set_folds(lib, options, folds)
        if previous_stage_model is not None:
            path = os.fsencode(os.fspath(previous_stage_model))
            _raise_for(lib, lib.nnrt_options_set_previous_stage_model(options, path))
        status = lib.nnrt_bundle_write(os.fsencode(os.fspath(model_dir)), options, os.fsencode(os.fspath(output)))
        _raise_for(lib, status)
    finally:
        lib.nnrt_options_free(options)


def runtime_info(library: Optional[PathLike] = None) -> dict:
    """What this process has: library and ABI versions, compiled features, the CPU's vector
    features, ONNX Runtime's version and path (or why none loads), the execution providers with
    a device, and the OpenVINO plugin when registered."""
    lib = load_library(library)
    text = c_char_p()
    _raise_for(lib, lib.nnrt_runtime_info(byref(text)))
    return json.loads(text.value.decode("utf-8"))


_LOG_LEVELS = {"verbose": _lib.NNRT_LOG_VERBOSE, "info": _lib.NNRT_LOG_INFO, "warning": _lib.NNRT_LOG_WARNING,
               "error": _lib.NNRT_LOG_ERROR}
_log_callback = None  # keeps the installed C callback alive


def set_log_handler(handler: Optional[Callable[[str, str], None]], level: str = "info", library=None) -> None:
    """Sends the library's and ONNX Runtime's messages at ``level`` (``verbose``, ``info``,
    ``warning``, ``error``) or above to ``handler(level_name, message)``, e.g. a ``logging``
    logger's method; ``None`` restores the default (errors only, on stderr). The handler may be
    called from any thread, ONNX Runtime's included; exceptions it raises are ignored."""
    global _log_callback
    lib = load_library(library)
    if level not in _LOG_LEVELS:
        raise _invalid(f"log level {level!r} is not one of {sorted(_LOG_LEVELS)}")
    names = {code: name for name, code in _LOG_LEVELS.items()}
    if handler is None:
        callback = _lib.LOG_FN()
    else:
        def forward(code: int, message: bytes, _user_data) -> None:
            try:
                handler(names.get(code, "error"), message.decode("utf-8", "replace"))
            except BaseException:  # nothing may propagate into C
                pass

        callback = _lib.LOG_FN(forward)
    _raise_for(lib, lib.nnrt_set_log_callback(callback, None, _LOG_LEVELS[level]))
    _log_callback = callback if handler is not None else None


def _name(value, what: str) -> bytes:
    """A name for the library to parse (it owns the vocabulary and the error message)."""
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a string, got {value!r}")
    return value.encode("utf-8")
