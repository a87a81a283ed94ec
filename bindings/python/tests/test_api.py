"""The Python API: introspection, buffers, progress and cancellation, errors, lifetime."""

import json
import threading

import numpy as np
import pytest

import nnunet_rt
from nnunet_rt import _lib
from nnrt_testing import MODELS

FAST = {"tta": False}


def _predict(model, case, array=None, **kwargs):
    options = dict(FAST)
    options.update(kwargs)
    return model.predict(case.image if array is None else array, case.spacing, case.origin, case.direction, **options)


@pytest.fixture(scope="module")
def fast_labels(fast_model, lesion_case):
    return _predict(fast_model, lesion_case).labels


@pytest.fixture
def recorded_pointers(fast_model, monkeypatch):
    """Records the voxel pointer every nnrt_predict call receives."""
    pointers = []
    original = fast_model.library.nnrt_predict

    def spy(model, volume, options, out):
        pointers.append(volume._obj.data)
        return original(model, volume, options, out)

    monkeypatch.setattr(fast_model.library, "nnrt_predict", spy)
    return pointers


# -- introspection ------------------------------------------------------------------------------


def test_model_properties(multitask_model):
    dataset = json.loads((MODELS / "multitask_ct" / "dataset.json").read_text())
    assert multitask_model.num_channels == len(dataset["channel_names"]) == 1
    assert multitask_model.labels == sorted(dataset["labels"], key=dataset["labels"].get)
    assert multitask_model.classes == ["subtype0", "subtype1", "subtype2"]
    assert multitask_model.folds == ["0", "1"]
    assert len(multitask_model.spacing) == 3 and all(s > 0 for s in multitask_model.spacing)
    assert len(multitask_model.patch_size) == 3 and all(isinstance(p, int) for p in multitask_model.patch_size)
    assert "multitask_ct" in repr(multitask_model)


def test_fold_selection(fast_model):
    assert fast_model.folds == ["0"]
    with nnunet_rt.Model(MODELS / "multitask_ct", folds=[1], threads=1) as model:
        assert model.folds == ["1"]


def test_library_version_and_abi():
    assert nnunet_rt.library_version().startswith("nnunet-rt/")
    assert nnunet_rt.load_library().nnrt_abi_version() == nnunet_rt.ABI_VERSION


# -- prediction outputs -------------------------------------------------------------------------


def test_prediction_outputs(fast_model, lesion_case, fast_labels):
    prediction = _predict(fast_model, lesion_case, probabilities=True)
    z, y, x = lesion_case.image.shape
    assert prediction.labels.shape == (z, y, x)
    np.testing.assert_array_equal(prediction.labels, fast_labels)
    assert prediction.label_names == fast_model.labels
    assert set(prediction.timings_ms) == {"preprocess", "network", "export"}
    assert all(t >= 0 for t in prediction.timings_ms.values())
    assert prediction.probabilities.shape == (3, z, y, x)
    assert prediction.probabilities.dtype == np.float32
    np.testing.assert_allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-4)
    agreement = (prediction.probabilities.argmax(axis=0) == prediction.labels).mean()
    assert agreement > 0.999
    assert prediction.class_probabilities.shape == (3,)
    assert prediction.class_probabilities.sum() == pytest.approx(1.0)
    assert prediction.predicted_class == int(np.argmax(prediction.class_probabilities))
    assert prediction.label_counts()["background"] == int((prediction.labels == 0).sum())
    # Outputs are numpy copies: they own their memory and are writable.
    assert prediction.labels.flags.owndata and prediction.labels.flags.writeable
    assert _predict(fast_model, lesion_case).probabilities is None


def test_channel_axis_is_accepted(fast_model, lesion_case, fast_labels):
    prediction = _predict(fast_model, lesion_case, lesion_case.image[np.newaxis])
    np.testing.assert_array_equal(prediction.labels, fast_labels)


def test_direction_as_matrix(fast_model, lesion_case, fast_labels):
    matrix = np.asarray(lesion_case.direction).reshape(3, 3)
    prediction = fast_model.predict(lesion_case.image, lesion_case.spacing, lesion_case.origin, matrix, **FAST)
    np.testing.assert_array_equal(prediction.labels, fast_labels)


# -- buffers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"])
def test_supported_dtypes_are_not_copied(dtype):
    array = np.zeros((2, 3, 4), dtype=dtype)
    assert nnunet_rt.as_volume_array(array) is array


@pytest.mark.parametrize(
    "array, dtype",
    [
        (np.zeros((4, 3, 2), dtype="i2").transpose(), "i2"),  # Fortran order
        (np.zeros((4, 6, 4), dtype="f4")[:, ::2], "f4"),  # strided view
        (np.zeros((2, 3, 4), dtype=">i2"), "i2"),  # non-native byte order
        (np.zeros((2, 3, 4), dtype=bool), "u1"),
        (np.zeros((2, 3, 4), dtype="f2"), "f4"),
        (np.zeros((2, 3, 4), dtype="i8"), "f8"),
    ],
)
def test_other_arrays_are_copied_once(array, dtype):
    converted = nnunet_rt.as_volume_array(array)
    assert converted is not array
    assert converted.flags.c_contiguous and converted.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(converted, array)


def test_contiguous_input_is_passed_in_place(fast_model, lesion_case, recorded_pointers):
    image = lesion_case.image
    assert image.flags.c_contiguous and image.dtype == np.int16
    _predict(fast_model, lesion_case, image)
    assert recorded_pointers == [image.ctypes.data]


def test_non_contiguous_input(fast_model, lesion_case, fast_labels, recorded_pointers):
    fortran = np.asfortranarray(lesion_case.image)
    assert not fortran.flags.c_contiguous
    np.testing.assert_array_equal(_predict(fast_model, lesion_case, fortran).labels, fast_labels)
    assert recorded_pointers[-1] != fortran.ctypes.data

    padded = np.zeros((lesion_case.image.shape[0] * 2,) + lesion_case.image.shape[1:], dtype=np.int16)
    padded[::2] = lesion_case.image
    strided = padded[::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(_predict(fast_model, lesion_case, strided).labels, fast_labels)


def test_converted_dtype_gives_same_labels(fast_model, lesion_case, fast_labels):
    as_int64 = lesion_case.image.astype(np.int64)
    np.testing.assert_array_equal(_predict(fast_model, lesion_case, as_int64).labels, fast_labels)


# -- progress and cancellation -----------------------------------------------------------------


def test_progress_is_reported_in_order(fast_model, lesion_case):
    calls = []
    _predict(fast_model, lesion_case, progress=lambda stage, fraction: calls.append((stage, fraction)))
    order = ["preprocess", "network", "export"]
    assert [s for s in order if any(c[0] == s for c in calls)] == order
    keys = [(order.index(stage), fraction) for stage, fraction in calls]
    assert keys == sorted(keys), "stages and fractions must not go backwards"
    assert all(0.0 <= fraction <= 1.0 for _, fraction in calls)
    network = [f for s, f in calls if s == "network"]
    assert len(network) > 2 and network[0] == 0.0 and network[-1] == 1.0
    assert calls[-1] == ("export", 1.0)


def test_progress_returning_true_or_none_continues(fast_model, lesion_case, fast_labels):
    assert (_predict(fast_model, lesion_case, progress=lambda s, f: True).labels == fast_labels).all()
    assert (_predict(fast_model, lesion_case, progress=lambda s, f: None).labels == fast_labels).all()


def test_cancel(fast_model, lesion_case, fast_labels):
    calls = []

    def progress(stage, fraction):
        calls.append((stage, fraction))
        return not (stage == "network" and fraction > 0.3)

    with pytest.raises(nnunet_rt.Cancelled) as caught:
        _predict(fast_model, lesion_case, progress=progress)
    assert caught.value.status == _lib.NNRT_CANCELLED
    assert caught.value.message
    assert calls[-1][0] == "network" and calls[-1][1] > 0.3
    assert not any(s == "export" for s, _ in calls)
    # The model is still usable after a cancelled run.
    np.testing.assert_array_equal(_predict(fast_model, lesion_case).labels, fast_labels)


class _CallbackFailure(Exception):
    pass


def test_callback_exception_is_reraised(fast_model, lesion_case, fast_labels):
    calls = []

    def progress(stage, fraction):
        calls.append(stage)
        if stage == "network" and fraction > 0:
            raise _CallbackFailure("from the callback")

    with pytest.raises(_CallbackFailure, match="from the callback"):
        _predict(fast_model, lesion_case, progress=progress)
    assert calls.count("network") == 2, "the run stops at the first failure"
    np.testing.assert_array_equal(_predict(fast_model, lesion_case).labels, fast_labels)


def test_callback_keyboard_interrupt_is_reraised(fast_model, lesion_case):
    def progress(stage, fraction):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _predict(fast_model, lesion_case, progress=progress)


# -- errors -------------------------------------------------------------------------------------


def test_wrong_channel_count(lesion_case):
    with nnunet_rt.Model(MODELS / "two_channel") as model:
        assert model.num_channels == 2
        with pytest.raises(nnunet_rt.ShapeMismatch) as caught:
            model.predict(lesion_case.image, lesion_case.spacing, **FAST)
    assert caught.value.status == _lib.NNRT_SHAPE_MISMATCH
    assert "channel" in caught.value.message
    assert str(caught.value).startswith("shape mismatch: ")


def test_nan_spacing(fast_model, lesion_case):
    with pytest.raises(nnunet_rt.InvalidImage) as caught:
        fast_model.predict(lesion_case.image, (0.8, float("nan"), 2.5), **FAST)
    assert "spacing" in caught.value.message


def test_nan_voxel(fast_model):
    volume = np.zeros((8, 8, 8), dtype=np.float32)
    volume[1, 2, 3] = np.nan
    with pytest.raises(nnunet_rt.InvalidImage, match="NaN"):
        fast_model.predict(volume, (1.0, 1.0, 1.0), **FAST)


def test_non_orthonormal_direction(fast_model, lesion_case):
    with pytest.raises(nnunet_rt.InvalidImage, match="orthonormal"):
        fast_model.predict(lesion_case.image, lesion_case.spacing, direction=(1, 0, 0, 0, 2, 0, 0, 0, 1), **FAST)


def test_missing_model(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(nnunet_rt.Io) as caught:
        nnunet_rt.Model(missing)
    assert caught.value.status == _lib.NNRT_IO
    assert "no_such_model" in caught.value.message


def test_unknown_fold():
    with pytest.raises(nnunet_rt.InvalidArgument, match="7"):
        nnunet_rt.Model(MODELS / "multitask_ct", folds=["7"])


def test_empty_volume(fast_model):
    with pytest.raises(nnunet_rt.InvalidImage):
        fast_model.predict(np.zeros((0, 4, 4), dtype=np.int16), (1.0, 1.0, 1.0), **FAST)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"step_size": 0.0}, "step"),
        ({"step_size": 1.5}, "step"),
        ({"classification_policy": "max"}, "classification policy"),
    ],
)
def test_invalid_predict_options(fast_model, lesion_case, kwargs, fragment):
    with pytest.raises(nnunet_rt.InvalidArgument, match=fragment):
        _predict(fast_model, lesion_case, **kwargs)


@pytest.mark.parametrize(
    "array, spacing",
    [
        (np.zeros((4, 4), dtype=np.int16), (1, 1, 1)),
        (np.zeros((4, 4, 4), dtype=np.complex64), (1, 1, 1)),
        (np.zeros((4, 4, 4), dtype=np.int16), (1, 1)),
    ],
)
def test_invalid_volume_arguments(fast_model, array, spacing):
    with pytest.raises(nnunet_rt.InvalidArgument):
        fast_model.predict(array, spacing, **FAST)


def test_invalid_load_options():
    for device in ["tpu", "CPU", "cuda:", "cuda:-1", "openvino:0", ""]:
        with pytest.raises(nnunet_rt.InvalidArgument, match="device"):
            nnunet_rt.Model(MODELS / "multitask_ct", device=device)
    with pytest.raises(nnunet_rt.InvalidArgument, match="network precision"):
        nnunet_rt.Model(MODELS / "multitask_ct", network_precision="fp16")
    # bf16 cannot run on ONNX Runtime's CPU provider: refused at load, never run as f32.
    with pytest.raises(nnunet_rt.InvalidArgument, match="bf16"):
        nnunet_rt.Model(MODELS / "multitask_ct", device="cpu", network_precision="bf16")
    with pytest.raises(nnunet_rt.InvalidArgument, match="threads"):
        nnunet_rt.Model(MODELS / "multitask_ct", threads=-1)


def test_runtime_info_names_what_runs_the_network():
    with nnunet_rt.Model(MODELS / "multitask_ct", folds=[0], device="cpu") as model:
        info = model.runtime_info
        assert (info["device_requested"], info["device"]) == ("cpu", "cpu")
        assert info["execution_provider"] == "CPUExecutionProvider"
        assert info["network_precision"] == "f32" and info["openvino"] is None
        assert info["onnxruntime_version"].startswith("1.")
    with nnunet_rt.Model(MODELS / "multitask_ct", folds=[0]) as model:
        info = model.runtime_info
        assert info["device_requested"] == "auto"
        # auto is OpenVINO when its plugin loads, else the CPU provider with the reason said.
        if info["device"] == "openvino":
            assert info["execution_provider"] == "OpenVINOExecutionProvider" and info["openvino"]["version"]
        else:
            assert info["device"] == "cpu" and info["auto_fallback_reason"]


def test_exception_classes():
    for status, cls in nnunet_rt.errors.BY_STATUS.items():
        error = nnunet_rt.errors.error_for(status, "detail")
        assert type(error) is cls and isinstance(error, nnunet_rt.NnunetRtError)
        assert error.status == status and error.message == "detail"
        library_name = nnunet_rt.load_library().nnrt_status_str(status).decode()
        assert error.status_name == library_name
    assert set(nnunet_rt.errors.BY_STATUS) == set(range(1, 14))
    assert issubclass(nnunet_rt.InvalidArgument, ValueError)
    assert type(nnunet_rt.errors.error_for(99, "x")) is nnunet_rt.NnunetRtError


# -- lifetime -----------------------------------------------------------------------------------


def test_use_after_close(lesion_case):
    model = nnunet_rt.Model(MODELS / "multitask_ct", folds=["0"])
    model.close()
    model.close()  # idempotent
    assert model.closed
    with pytest.raises(nnunet_rt.InvalidArgument, match="closed"):
        model.predict(lesion_case.image, lesion_case.spacing, **FAST)
    with pytest.raises(nnunet_rt.InvalidArgument, match="closed"):
        model.labels
    with pytest.raises(nnunet_rt.InvalidArgument, match="closed"):
        with model:
            pass
    model.__del__()


def test_context_manager_closes():
    with nnunet_rt.Model(MODELS / "multitask_ct", folds=["0"]) as model:
        assert not model.closed
    assert model.closed


def test_close_during_prediction_cancels_it_and_frees_afterwards(lesion_case):
    model = nnunet_rt.Model(MODELS / "multitask_ct", folds=["0"])

    def progress(stage, fraction):
        model.close()  # cancels the running prediction, which keeps the model alive until it returns

    with pytest.raises(nnunet_rt.Cancelled):
        _predict(model, lesion_case, progress=progress)
    assert model.closed
    with pytest.raises(nnunet_rt.InvalidArgument):
        _predict(model, lesion_case)


def test_del_after_failed_load_is_safe(tmp_path):
    with pytest.raises(nnunet_rt.Io):
        nnunet_rt.Model(tmp_path / "missing")
    half = nnunet_rt.Model.__new__(nnunet_rt.Model)
    half.__del__()


def test_concurrent_predictions_on_one_model(fast_model, lesion_case, fast_labels):
    results, errors = [], []

    def work():
        try:
            results.append(_predict(fast_model, lesion_case).labels)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 2
    for labels in results:
        np.testing.assert_array_equal(labels, fast_labels)


# -- library discovery --------------------------------------------------------------------------


def test_explicit_library_that_does_not_exist(tmp_path):
    with pytest.raises(nnunet_rt.LibraryError, match="does not exist"):
        nnunet_rt.load_library(tmp_path / "libnnunet_rt.so")


def test_environment_variable_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NNUNET_RT_LIB", str(tmp_path / "elsewhere.so"))
    with pytest.raises(nnunet_rt.LibraryError, match="NNUNET_RT_LIB"):
        nnunet_rt.load_library()


def test_file_that_is_not_a_library(tmp_path):
    fake = tmp_path / "libnnunet_rt.so"
    fake.write_text("not a shared library")
    with pytest.raises(nnunet_rt.LibraryError, match="cannot load"):
        nnunet_rt.load_library(fake)


def test_abi_mismatch_is_refused(monkeypatch):
    path = nnunet_rt.load_library().path
    monkeypatch.setattr(_lib, "_loaded", {})
    monkeypatch.setattr(_lib, "ABI_VERSION", 999)
    with pytest.raises(nnunet_rt.LibraryError, match="ABI version 2.*999"):
        nnunet_rt.load_library(path)


def test_nothing_found_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.delenv("NNUNET_RT_LIB", raising=False)
    monkeypatch.setattr(_lib, "candidates", lambda: [tmp_path / "a.so", tmp_path / "b.so"])
    with pytest.raises(nnunet_rt.LibraryError) as caught:
        nnunet_rt.load_library()
    text = str(caught.value)
    assert "NNUNET_RT_LIB" in text and str(tmp_path / "a.so") in text and str(tmp_path / "b.so") in text


def test_source_checkout_builds_are_candidates():
    names = [str(p) for p in _lib.candidates()]
    assert any("target/debug" in n for n in names) and any("target/release" in n for n in names)


def test_bundle_predicts_like_its_folder(tmp_path, fast_labels, lesion_case):
    bundle = tmp_path / "multitask.nnrt"
    nnunet_rt.write_bundle(MODELS / "multitask_ct", bundle, folds=["0"])
    with nnunet_rt.Model(bundle) as from_file:
        assert np.array_equal(_predict(from_file, lesion_case).labels, fast_labels)
    data = bundle.read_bytes()
    with nnunet_rt.Model.from_bundle_bytes(data) as from_memory:
        assert from_memory.folds == ["0"]
        assert np.array_equal(_predict(from_memory, lesion_case).labels, fast_labels)
    with pytest.raises(nnunet_rt.InvalidModel, match="bundle"):
        nnunet_rt.Model.from_bundle_bytes(data[:-1])
    with pytest.raises(nnunet_rt.InvalidModel):
        nnunet_rt.Model.from_bundle_bytes(b"")
    with pytest.raises(nnunet_rt.Io):
        nnunet_rt.write_bundle(tmp_path / "missing", tmp_path / "x.nnrt")
    assert not (tmp_path / "x.nnrt").exists()


def test_cancel_from_another_thread_interrupts_the_running_pass(lesion_case):
    model = nnunet_rt.Model(MODELS / "multitask_ct", folds=["0"])
    in_network = threading.Event()
    cancel_sent = threading.Event()
    outcome = []

    def progress(stage, fraction):
        if stage == "network" and not in_network.is_set():
            in_network.set()
            cancel_sent.wait(60)  # the next pass starts after the cancel: it must be interrupted
        return True

    def run():
        try:
            _predict(model, lesion_case, tta=True, progress=progress)
            outcome.append("finished")
        except nnunet_rt.Cancelled as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=run)
    worker.start()
    assert in_network.wait(60)
    model.cancel()
    cancel_sent.set()
    worker.join(60)
    assert outcome and "cancel" in outcome[0], outcome
    # The model still predicts afterwards.
    assert _predict(model, lesion_case).labels.shape == lesion_case.image.shape
    model.close()


def test_estimate_and_memory_limit_at_the_boundary(fast_model, lesion_case):
    estimate = fast_model.estimate_peak_bytes(lesion_case.image.shape, lesion_case.spacing)
    assert estimate > lesion_case.image.size
    assert _predict(fast_model, lesion_case, memory_limit=estimate).labels.shape == lesion_case.image.shape
    with pytest.raises(nnunet_rt.OutOfMemory, match="memory limit"):
        _predict(fast_model, lesion_case, memory_limit=estimate - 1)
    with pytest.raises(nnunet_rt.InvalidArgument):
        fast_model.estimate_peak_bytes((4, 4), lesion_case.spacing)


def test_precision_and_names(fast_model, lesion_case, fast_labels):
    single = _predict(fast_model, lesion_case, precision="single")
    assert single.labels.shape == fast_labels.shape
    with pytest.raises(nnunet_rt.InvalidArgument, match="precision"):
        _predict(fast_model, lesion_case, precision="double")
    assert fast_model.channel_names == ["CT"]
    assert single.label_names == fast_model.labels


def test_process_runtime_info():
    info = nnunet_rt.runtime_info()
    assert info["abi_version"] == nnunet_rt.ABI_VERSION == 2
    assert "CPUExecutionProvider" in info["execution_providers"]
    assert info["onnxruntime_library"]


def test_log_handler_receives_messages(fast_model, lesion_case):
    received = []
    nnunet_rt.set_log_handler(lambda level, message: received.append((level, message)), level="info")
    try:
        _predict(fast_model, lesion_case)
    finally:
        nnunet_rt.set_log_handler(None)
    assert any(level == "info" and "predicted" in message for level, message in received), received
    count = len(received)
    _predict(fast_model, lesion_case)
    assert len(received) == count, "nothing after the handler is removed"
    with pytest.raises(nnunet_rt.InvalidArgument):
        nnunet_rt.set_log_handler(print, level="loud")


def test_an_ensemble_of_folders(lesion_case):
    with nnunet_rt.Model.ensemble([MODELS / "resenc_ct", MODELS / "resenc_ct_2d"], folds=["0"]) as ensemble:
        prediction = _predict(ensemble, lesion_case, probabilities=True)
    assert prediction.labels.shape == lesion_case.image.shape
    assert np.allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-4)
    with pytest.raises(nnunet_rt.InvalidArgument):
        nnunet_rt.Model.ensemble([])
    with pytest.raises(nnunet_rt.InvalidModel, match="disagree"):
        nnunet_rt.Model.ensemble([MODELS / "resenc_ct", MODELS / "two_channel"])
