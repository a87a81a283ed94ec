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
