"""nnunet_rt_slicer_logic without Slicer: geometry, a full run, segments, cancellation."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nnunet_rt
from NnunetRtLib import nnunet_rt_slicer_logic as rtlogic  # as NnunetRt.py imports it in Slicer
from nnrt_testing import MODELS, load_case

FLIP_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(axis, angle):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _ijk_to_ras(rotation, spacing, origin_ras):
    m = np.eye(4)
    m[:3, :3] = np.asarray(rotation) * np.asarray(spacing)
    m[:3, 3] = origin_ras
    return m


MATRICES = {
    "identity": np.eye(4),
    "anisotropic": _ijk_to_ras(np.eye(3), (0.7, 0.8, 2.5), (10.0, -20.0, 30.0)),
    # What Slicer shows for a typical LPS-stored CT: i → left, j → posterior.
    "flipped": _ijk_to_ras(np.diag([-1.0, -1.0, 1.0]), (0.75, 0.75, 3.0), (120.0, 140.0, -300.0)),
    "axes_permuted": _ijk_to_ras([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], (1.0, 0.9, 4.0), (5.0, 6.0, 7.0)),
    "oblique": _ijk_to_ras(_rotation((1.0, 2.0, 3.0), 0.4), (0.7, 0.8, 2.2), (-123.4, 56.7, -890.1)),
    "oblique_mirrored": _ijk_to_ras(_rotation((0.3, -1.0, 0.2), 1.1) @ np.diag([1.0, -1.0, 1.0]), (0.5, 0.6, 5.0), (1.0, 2.0, 3.0)),
}


@pytest.mark.parametrize("name", MATRICES)
def test_geometry_round_trip(name):
    ijk_to_ras = MATRICES[name]
    geometry = rtlogic.itk_geometry_from_ijk_to_ras(ijk_to_ras)
    direction = np.asarray(geometry.direction).reshape(3, 3)
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(geometry.spacing, np.linalg.norm(ijk_to_ras[:3, :3], axis=0), rtol=1e-14)
    back = rtlogic.ijk_to_ras_from_itk_geometry(geometry.spacing, geometry.origin, geometry.direction)
    np.testing.assert_allclose(back, ijk_to_ras, atol=1e-12)
    # Every voxel lands on the same point: RAS from Slicer's matrix = LPS from ITK's formula, flipped.
    rng = np.random.default_rng(0)
    for ijk in rng.uniform(-5, 50, size=(10, 3)):
        ras = (ijk_to_ras @ np.append(ijk, 1.0))[:3]
        lps = np.asarray(geometry.origin) + direction @ (np.asarray(geometry.spacing) * ijk)
        np.testing.assert_allclose(lps * (-1, -1, 1), ras, atol=1e-9)


def test_identity_means_lps_flip():
    geometry = rtlogic.itk_geometry_from_ijk_to_ras(_ijk_to_ras(np.eye(3), (0.7, 0.8, 2.5), (10.0, -20.0, 30.0)))
    assert geometry.spacing == (0.7, 0.8, 2.5)
    assert geometry.origin == (-10.0, 20.0, 30.0)
    assert geometry.direction == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def test_itk_round_trip_of_a_fixture_geometry():
    case = load_case("oblique")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    geometry = rtlogic.itk_geometry_from_ijk_to_ras(ijk_to_ras)
    np.testing.assert_allclose(geometry.spacing, case.spacing, rtol=1e-12)
    np.testing.assert_allclose(geometry.origin, case.origin, atol=1e-9)
    np.testing.assert_allclose(geometry.direction, case.direction, atol=1e-12)


@pytest.mark.parametrize(
    "matrix, fragment",
    [
        (np.eye(3), "4x4"),
        (np.diag([1.0, 0.0, 1.0, 1.0]), "zero column"),
        (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]), "affine"),
        (np.full((4, 4), np.nan), "NaN"),
    ],
)
def test_bad_matrices(matrix, fragment):
    with pytest.raises(ValueError, match=fragment):
        rtlogic.itk_geometry_from_ijk_to_ras(matrix)


def test_segments_and_subtype_text():
    segments = rtlogic.build_segments(["background", "pancreas", "lesion"])
    assert [(s.name, s.value) for s in segments] == [("pancreas", 1), ("lesion", 2)]
    assert len({s.color for s in segments}) == 2
    assert all(0.0 <= c <= 1.0 for s in segments for c in s.color)
    many = rtlogic.build_segments([f"l{i}" for i in range(30)])
    assert len(many) == 29 and all(len(s.color) == 3 for s in many)

    class Head:
        predicted_class = 1
        predicted_class_name = "subtype1"
        class_names = ["subtype0", "subtype1"]
        class_probabilities = np.array([0.25, 0.75])

    assert rtlogic.subtype_text(Head) == "subtype1 (p = 0.750)"
    assert rtlogic.class_rows(Head) == [("subtype0", 0.25), ("subtype1", 0.75)]

    class NoHead:
        predicted_class = None
        class_probabilities = None

    assert rtlogic.subtype_text(NoHead) == ""
    assert rtlogic.class_rows(NoHead) == []


def test_overall_fraction_is_monotonic():
    points = [("preprocess", 0.0), ("preprocess", 1.0), ("network", 0.0), ("network", 0.5),
              ("network", 1.0), ("export", 0.0), ("export", 1.0)]
    values = [rtlogic.overall_fraction(s, f) for s, f in points]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0


@pytest.fixture(scope="module")
def model():
    with nnunet_rt.Model(MODELS / "multitask_ct") as loaded:
        yield loaded


def test_full_run_equals_direct_predict(model):
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    options = {"step_size": case.meta["step_size"], "tta": False}

    output = rtlogic.segment_volume(model, case.image, ijk_to_ras, **options)
    direct = model.predict(case.image, case.spacing, case.origin, case.direction, **options)

    np.testing.assert_array_equal(output.labels, direct.labels)
    assert output.labels.shape == case.image.shape
    np.testing.assert_array_equal(output.ijk_to_ras, ijk_to_ras)
    assert output.geometry.spacing == case.spacing and output.geometry.origin == case.origin
    np.testing.assert_allclose(output.prediction.class_probabilities, direct.class_probabilities, rtol=0, atol=0)
    assert [s.name for s in output.segments] == ["pancreas", "lesion"]
    assert output.subtype.startswith(direct.predicted_class_name + " (p = ")
    assert [name for name, _ in output.classes] == model.classes


def test_task_runs_in_the_background(model):
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    task = rtlogic.SegmentationTask(model, case.image, ijk_to_ras, tta=False).start()
    assert task.wait(120)
    assert task.done and task.error is None
    direct = model.predict(case.image, case.spacing, case.origin, case.direction, tta=False)
    np.testing.assert_array_equal(task.result.labels, direct.labels)
    assert task.progress == ("export", 1.0, 1.0)


def test_task_loads_the_model_on_the_worker():
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    task = rtlogic.SegmentationTask(lambda: nnunet_rt.Model(MODELS / "multitask_ct", folds=["0"]),
                                    case.image, ijk_to_ras, tta=False)
    assert task.model is None and task.progress[0] == "loading"
    task.start()
    assert task.wait(120) and task.error is None
    assert task.model.folds == ["0"]
    task.model.close()


def test_cancel_from_another_thread(model):
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    task = rtlogic.SegmentationTask(model, case.image, ijk_to_ras, tta=True).start()
    deadline = time.monotonic() + 60
    while task.progress[0] != "network" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert task.progress[0] == "network", "the run never reached the network stage"
    task.cancel()
    started = time.monotonic()
    assert task.wait(60)
    stopped_after = time.monotonic() - started
    assert isinstance(task.error, nnunet_rt.Cancelled)
    assert task.result is None
    stage, fraction, _ = task.progress
    assert stage == "network" and fraction < 1.0, "the run stopped before the network stage ended"
    print(f"cancelled at network {fraction:.2f}, stopped {stopped_after:.2f} s after the request")


def test_cancel_before_start_does_not_run():
    calls = []
    task = rtlogic.SegmentationTask(lambda: calls.append(1) or _NeverPredicts(), np.zeros((2, 2, 2)), np.eye(4))
    task.cancel()
    task.start()
    assert task.wait(10)
    assert isinstance(task.error, nnunet_rt.Cancelled)


class _NeverPredicts:
    def predict(self, *args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("predict called after cancel")


def test_import_falls_back_to_the_source_checkout(monkeypatch):
    python_dir = Path(nnunet_rt.__file__).resolve().parents[1]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p).resolve() != python_dir])
    monkeypatch.delitem(sys.modules, "nnunet_rt")
    imported = rtlogic.import_nnunet_rt()
    assert Path(imported.__file__).resolve().parents[1] == python_dir
    assert str(python_dir) in sys.path


# -- options, cache, channels, estimate ---------------------------------------------------------


def test_parse_folds_and_model_kind(tmp_path):
    assert rtlogic.parse_folds("") is None and rtlogic.parse_folds("  ") is None
    assert rtlogic.parse_folds("0,1 2") == ["0", "1", "2"]
    assert rtlogic.parse_folds("all") == ["all"]
    bundle = tmp_path / "model.nnrt"
    bundle.write_bytes(b"")
    assert rtlogic.model_kind(MODELS / "multitask_ct") == "folder"
    assert rtlogic.model_kind(bundle) == "bundle"
    assert rtlogic.model_kind(tmp_path / "missing") is None and rtlogic.model_kind("") is None


def test_channel_names_from_dataset_json(tmp_path):
    assert rtlogic.channel_names(MODELS / "multitask_ct", 1) == ["CT"]
    (tmp_path / "dataset.json").write_text('{"channel_names": {"0": "T2", "1": "ADC"}}')
    assert rtlogic.channel_names(tmp_path, 3) == ["T2", "ADC", "channel 2"]
    # A bundle (a file) or an unreadable folder: numbered names.
    assert rtlogic.channel_names(tmp_path / "dataset.json", 2) == ["channel 0", "channel 1"]
    info = rtlogic.describe_folder(MODELS / "multitask_ct")
    assert info["channels"] == ["CT"]
    assert "pancreas, lesion" in info["summary"] and "folds 0" in info["summary"], info
    with pytest.raises(ValueError, match="dataset.json"):
        rtlogic.describe_folder(tmp_path / "nowhere")


def test_model_options_are_the_cache_key():
    a = rtlogic.ModelOptions(path="m", folds=("0",), device="cpu")
    assert a == rtlogic.ModelOptions(path="m", folds=("0",), device="cpu") and hash(a) == hash(
        rtlogic.ModelOptions(path="m", folds=("0",), device="cpu"))
    for other in [rtlogic.ModelOptions(path="m", folds=("1",), device="cpu"),
                  rtlogic.ModelOptions(path="m", folds=("0",), device="auto"),
                  rtlogic.ModelOptions(path="m", folds=("0",), device="cpu", postprocessing=False),
                  rtlogic.ModelOptions(path="m", folds=("0",), device="cpu", previous_stage_model="low"),
                  rtlogic.ModelOptions(path="n", folds=("0",), device="cpu")]:
        assert other != a


def test_model_stays_loaded_between_runs():
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    cache = rtlogic.ModelCache()
    options = rtlogic.ModelOptions(path=str(MODELS / "multitask_ct"), folds=("0",), device="cpu", postprocessing=False)
    try:
        first = rtlogic.SegmentationTask(cache.source(options), case.image, ijk_to_ras, tta=False).start()
        assert first.wait(120) and first.error is None
        cache.keep(options, first)
        assert options in cache and cache.get(options) is first.model
        assert first.model.folds == ["0"] and first.model.runtime_info["device"] == "cpu"
        # The next run with the same options gets the loaded model itself, not a loader.
        assert cache.source(options) is first.model
        second = rtlogic.SegmentationTask(cache.source(options), case.image, ijk_to_ras, tta=False).start()
        assert second.wait(120) and second.error is None and second.model is first.model
        np.testing.assert_array_equal(second.result.labels, first.result.labels)
        # Other options: another model.
        other = rtlogic.ModelOptions(path=str(MODELS / "multitask_ct"), folds=("0",), device="cpu")
        assert other not in cache and callable(cache.source(other)) and not hasattr(cache.source(other), "predict")
    finally:
        cache.close()
    assert options not in cache and first.model.closed


def test_probabilities_roi_focus_and_stage_progress(model):
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    task = rtlogic.SegmentationTask(model, case.image, ijk_to_ras, tta=False, probabilities=True).start()
    assert task.stage_progress == {"preprocess": 0.0, "network": 0.0, "export": 0.0} or not task.done
    assert task.wait(120) and task.error is None
    output = task.result
    assert output.probabilities is not None and output.probabilities.shape == (len(model.labels),) + case.image.shape
    np.testing.assert_allclose(output.probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(output.probabilities.argmax(axis=0), output.labels)
    assert task.stage_progress == {"preprocess": 1.0, "network": 1.0, "export": 1.0}
    assert rtlogic.stage_text(task.stage_progress) == "Preprocess 100% \u00b7 Network 100% \u00b7 Export 100%"
    assert rtlogic.stage_text({"network": 0.5}) == "Preprocess 0% \u00b7 Network 50% \u00b7 Export 0%"
    # roi_focus reaches the library (same call as Model.predict with it).
    focused = rtlogic.segment_volume(model, case.image, ijk_to_ras, tta=False, roi_focus=True)
    direct = model.predict(case.image, case.spacing, case.origin, case.direction, tta=False, roi_focus=True)
    np.testing.assert_array_equal(focused.labels, direct.labels)
    assert focused.probabilities is None


def test_multichannel_volumes_are_stacked():
    calls = {}

    class Recorder:
        def predict(self, volume, spacing, origin, direction, **options):
            calls["shape"] = np.asarray(volume).shape
            calls["options"] = options

            class P:
                labels = np.zeros(np.asarray(volume).shape[1:], dtype=np.uint8)
                label_names = ["background", "a"]
                probabilities = None
                class_probabilities = None
                predicted_class = None
                timings_ms = {"preprocess": 1.0, "network": 2.0, "export": 3.0}

            return P

    channels = [np.zeros((4, 5, 6), dtype=np.int16), np.ones((4, 5, 6), dtype=np.float32)]
    output = rtlogic.segment_volume(Recorder(), channels, np.eye(4), step_size=0.7, roi_focus=True)
    assert calls["shape"] == (2, 4, 5, 6)
    assert calls["options"]["step_size"] == 0.7 and calls["options"]["roi_focus"] is True
    assert calls["options"]["probabilities"] is False
    assert output.labels.shape == (4, 5, 6) and [s.name for s in output.segments] == ["a"]


def test_estimate_counts_tiles_like_nnunet():
    # 96 x 96 x 40 voxels at 0.8 x 0.8 x 2.5 mm onto 0.75 x 0.75 x 2.0 mm: 102 x 102 x 50 voxels.
    # Patch 48 x 32 x 16, step 0.5: x 4 positions (ceil(54/24)+1), y 6 (ceil(70/16)+1),
    # z 6 (ceil(34/8)+1) = 144 tiles, the demo's count (demo/README.md); 2 folds x 8 mirrorings.
    estimate = rtlogic.estimate_run((96, 96, 40), (0.8, 0.8, 2.5), (0.75, 0.75, 2.0), (48, 32, 16),
                                    num_labels=3, num_folds=2)
    assert estimate.model_shape == (102, 102, 50)
    assert estimate.tiles == 4 * 6 * 6 == 144
    assert estimate.evaluations == 144 * 2 * 8
    assert estimate.seconds is None and "time known after the first run" in estimate.text()
    no_tta = rtlogic.estimate_run((96, 96, 40), (0.8, 0.8, 2.5), (0.75, 0.75, 2.0), (48, 32, 16),
                                  num_labels=3, num_folds=2, tta=False, seconds_per_evaluation=0.01)
    assert no_tta.evaluations == 144 * 2 and no_tta.seconds == pytest.approx(2.88)
    with_p = rtlogic.estimate_run((96, 96, 40), (0.8, 0.8, 2.5), (0.75, 0.75, 2.0), (48, 32, 16),
                                  num_labels=3, num_folds=2, probabilities=True)
    assert with_p.peak_bytes - estimate.peak_bytes == 3 * 96 * 96 * 40 * 4
    # Smaller than one patch: one tile.
    small = rtlogic.estimate_run((10, 10, 4), (1, 1, 1), (1, 1, 1), (48, 32, 16), num_labels=2, num_folds=1, tta=False)
    assert small.tiles == 1 and small.evaluations == 1


def test_estimate_for_a_loaded_model_and_measured_rate(model):
    case = load_case("multitask_lesion")
    ijk_to_ras = rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    estimate = rtlogic.estimate_for_model(model, case.image.shape, ijk_to_ras, tta=False)
    assert estimate.tiles >= 1 and estimate.evaluations == estimate.tiles * len(model.folds)
    # Memory: the library's own estimate, where the binding offers it.
    if hasattr(model, "estimate_peak_bytes"):
        geometry = rtlogic.itk_geometry_from_ijk_to_ras(ijk_to_ras)
        assert estimate.memory_from_library
        assert estimate.peak_bytes == model.estimate_peak_bytes(case.image.shape, geometry.spacing)
    output = rtlogic.segment_volume(model, case.image, ijk_to_ras, tta=False)
    rate = rtlogic.seconds_per_evaluation(output, estimate)
    assert rate > 0
    again = rtlogic.estimate_for_model(model, case.image.shape, ijk_to_ras, tta=False, seconds_per_evaluation=rate)
    assert again.seconds == pytest.approx(sum(output.prediction.timings_ms.values()) / 1000.0)
    assert "~" in again.text() and "network evaluations" in again.text()
