"""Model.predict against nnU-Net's own outputs for fixture cases (same folds, step, mirroring)."""

import numpy as np
import pytest

import nnunet_rt
from nnrt_testing import dice, load_case

# int16 + classification head; rotated/flipped direction with a non-zero origin;
# two channels in float32 with fold "all"; TTA off with step 0.75 and one fold; a 2d
# configuration; region-based labels; a cascade (its 3d_lowres stage named explicitly).
PARITY_CASES = ["multitask_lesion", "oblique", "two_channel", "same_spacing", "wide_2d", "regions", "cascade"]

MIN_DICE = 0.999


@pytest.fixture(scope="module")
def models():
    loaded = {}
    yield loaded
    for model in loaded.values():
        model.close()


def _model_for(models, case):
    key = (case.meta["model"], tuple(case.meta["folds"]))
    if key not in models:
        previous = case.meta.get("previous_stage")
        previous_dir = case.model_dir.parent / previous["model"] if previous else None
        models[key] = nnunet_rt.Model(case.model_dir, folds=case.meta["folds"], previous_stage_model=previous_dir)
    return models[key]


@pytest.mark.parametrize("case_id", PARITY_CASES)
def test_labels_match_nnunet(models, case_id):
    case = load_case(case_id)
    model = _model_for(models, case)
    assert model.folds == case.meta["folds"]
    prediction = model.predict(case.image, case.spacing, case.origin, case.direction, **case.predict_kwargs)

    assert prediction.labels.shape == case.reference.shape
    assert prediction.labels.dtype == np.uint8
    scores = {name: dice(prediction.labels, case.reference, value) for value, name in enumerate(model.labels)}
    differing = int((prediction.labels != case.reference).sum())
    print(f"{case_id}: Dice {', '.join(f'{n}={d:.6f}' for n, d in scores.items())}; "
          f"{differing} of {case.reference.size} voxels differ")
    for name, score in scores.items():
        assert score >= MIN_DICE, f"{case_id}: Dice of {name} is {score:.6f} < {MIN_DICE}"
    assert differing == 0, f"{case_id}: {differing} voxels differ from nnU-Net's segmentation"


def test_postprocessing_options(tmp_path):
    case = load_case("same_spacing")
    steps = {"postprocessing_fns": ["remove_all_but_largest_component_from_segmentation"],
             "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}]}
    (tmp_path / "postprocessing.json").write_text(__import__("json").dumps(steps))
    with nnunet_rt.Model(case.model_dir, folds=case.meta["folds"]) as plain, \
            nnunet_rt.Model(case.model_dir, folds=case.meta["folds"],
                            postprocessing=tmp_path / "postprocessing.json") as post:
        a = plain.predict(case.image, case.spacing, case.origin, case.direction, **case.predict_kwargs).labels
        b = post.predict(case.image, case.spacing, case.origin, case.direction, **case.predict_kwargs).labels
    assert ((b == 0) | (b == a)).all(), "postprocessing only removes voxels"
    with pytest.raises(nnunet_rt.InvalidModel):
        nnunet_rt.Model(case.model_dir, postprocessing=tmp_path / "missing.json")


def test_classification_matches_nnunet(models):
    case = load_case("multitask_lesion")
    expected = case.meta["classification"]
    model = _model_for(models, case)
    # The fixture's reference probabilities were computed for the lesion-weighted policy.
    prediction = model.predict(case.image, case.spacing, case.origin, case.direction,
                               classification_policy="lesion-weighted", **case.predict_kwargs)

    assert prediction.class_names == expected["class_names"] == model.classes
    np.testing.assert_allclose(prediction.class_probabilities, expected["probabilities"], atol=1e-3, rtol=0)
    assert prediction.predicted_class == expected["predicted_class"]
    assert prediction.predicted_class_name == expected["class_names"][expected["predicted_class"]]
    print("multitask_lesion: class probabilities", prediction.class_probabilities.tolist(),
          "vs nnU-Net", expected["probabilities"])

    mean = model.predict(case.image, case.spacing, case.origin, case.direction,
                         classification_policy="mean", **case.predict_kwargs)
    np.testing.assert_allclose(mean.class_probabilities, expected["mean_policy_probabilities"], atol=1e-3, rtol=0)
    assert mean.predicted_class == expected["mean_policy_predicted_class"]


def test_model_without_head_has_no_classification(models):
    case = load_case("same_spacing")
    model = _model_for(models, case)
    assert model.classes == []
    prediction = model.predict(case.image, case.spacing, case.origin, case.direction, **case.predict_kwargs)
    assert prediction.class_probabilities is None
    assert prediction.predicted_class is None
    assert prediction.predicted_class_name is None
    assert prediction.class_names == []
