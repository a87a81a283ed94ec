#!/usr/bin/env python3
"""Regenerate nnunet-rt's test fixtures and demo data, with nnU-Net v2 itself as the reference.

Run from the repository root with the tooling venv (tools/install-nnunet-venv.sh .venv-nnunet)::

    .venv-nnunet/bin/python tools/make_fixtures.py            # everything
    .venv-nnunet/bin/python tools/make_fixtures.py --stage cases --cases aniso_int16

Stages (in this order for "all"):

models  Synthesises CT-like (and two-channel MR-like) training volumes, preprocesses them with
        nnU-Net's DefaultPreprocessor, trains each fold briefly with a plain PyTorch loop
        (cross-entropy + Dice, plus a classification loss for the multi-task model), writes the
        model folders the way nnU-Net writes them (plans.json, dataset.json,
        fold_N/checkpoint_final.pth) under tools/.work/models/, exports every fold with
        tools/export_onnx.py and copies plans.json, dataset.json, fold_N/model.onnx and
        fold_N/nnunet_rt_export.json to tests/fixtures/models/<model>/.
        The cascade (cascade_ct_lowres, cascade_ct_fullres) is two folders sharing one plans.json
        (3d_lowres, 3d_fullres, 3d_cascade_fullres): 3d_lowres is trained on data preprocessed at its
        own spacing; 3d_cascade_fullres on the 3d_fullres-preprocessed image plus the one-hot of
        labels 1, 2 of a simulated previous-stage segmentation (simulated_previous_stage).
cases   Writes each test case's input NIfTI files and runs nnU-Net (CPU) on them:
        DefaultPreprocessor.run_case -> reference/preprocessed.npy,
        nnUNetPredictor.predict_logits_from_preprocessed_data -> reference/logits.npy,
        export_prediction_from_logits -> reference/seg.nii.gz (and probabilities.npy),
        and, for the multi-task model, the case classification (see tests/fixtures/README.md).
        A cascade case (CASES entry with previous_stage) first runs the 3d_lowres model the same way
        (reference/lowres_preprocessed.npy, lowres_logits.npy, lowres_seg.nii.gz on the input grid),
        then preprocesses the image with that file as the previous-stage segmentation
        (run_case(..., seg_file) + convert_labelmap_to_one_hot, as nnUNetv2_predict
        -prev_stage_predictions does), and checks both stages against predict_from_files end to end.
demo    demo/ct.nii.gz (synthetic abdominal CT) and demo/model/ (copy of the multitask_ct model).

The checkpoints (.pth) stay in tools/.work/ (git-ignored); tests need only the ONNX files.
Everything is seeded; results are reproducible on the same machine and library versions
(torch's CPU kernels may differ in the last bits elsewhere, which changes the trained weights).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
WORK = TOOLS / ".work"
FIXTURES = REPO / "tests" / "fixtures"
DEMO = REPO / "demo"


def _setup_env():
    for key in ("raw", "preprocessed", "results"):
        d = WORK / "nnunet_env" / key
        d.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(f"nnUNet_{key}", str(d))
    # nnUNetTrainerMultiTask (multi-task fixture model) lives in tools/trainers
    os.environ["nnUNet_extTrainer"] = str(TOOLS / "trainers")
    os.environ.setdefault("nnUNet_compile", "false")


_setup_env()

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(TOOLS))
import export_onnx  # noqa: E402

export_onnx.allow_trainer_lookup_without_primus()

LABELS = {"background": 0, "pancreas": 1, "lesion": 2}
SUBTYPES = ["subtype0", "subtype1", "subtype2"]
# lesion attenuation (HU) per subtype: the classification head learns it
SUBTYPE_HU = {0: 15.0, 1: 50.0, 2: 85.0}
ARCH_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
REQ_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]

# --------------------------------------------------------------------------------------------
# model definitions
# --------------------------------------------------------------------------------------------

MODELS = {
    "resenc_ct": dict(
        dataset_name="Dataset901_SyntheticPancreasCT",
        channel_names={"0": "CT"},
        modality="ct",
        trainer="nnUNetTrainer",
        mirror_axes=(0, 1, 2),
        folds=["0", "1"],
        spacing=[2.0, 0.75, 0.75],          # (z, y, x) after transpose; anisotropic like the real model
        transpose_forward=[0, 1, 2],
        patch=[16, 32, 48],
        features=[8, 16, 32],
        kernels=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
        strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        norm=["CTNormalization"],
        mask=[False],
        inherits=True,                      # 3d_fullres inherits from 3d_base
        with_2d=True,
        multitask=False,
        seed=11,
    ),
    "multitask_ct": dict(
        dataset_name="Dataset902_SyntheticPancreasMultiTask",
        channel_names={"0": "CT"},
        modality="ct",
        trainer="nnUNetTrainerMultiTask",
        mirror_axes=(0, 1, 2),
        folds=["0", "1"],
        spacing=[2.0, 0.75, 0.75],
        transpose_forward=[0, 1, 2],
        patch=[16, 32, 48],
        features=[6, 12, 24],
        kernels=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
        strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        norm=["CTNormalization"],
        mask=[False],
        inherits=False,
        with_2d=False,
        multitask=True,
        iteration_scale=2.0,                # segmentation + classification: train longer
        seed=22,
    ),
    # the 2d configuration of resenc_ct's plans (same dataset, seed and plans), trained on its own
    "resenc_ct_2d": dict(
        dataset_name="Dataset901_SyntheticPancreasCT",
        channel_names={"0": "CT"},
        modality="ct",
        trainer="nnUNetTrainer",
        configuration="2d",
        mirror_axes=(0, 1),                 # 2D axes (y, x), as nnU-Net's trainer sets for 2d
        folds=["0", "1"],
        spacing=[2.0, 0.75, 0.75],
        transpose_forward=[0, 1, 2],
        patch=[16, 32, 48],                 # of the 3d configurations in the shared plans
        patch_2d=[64, 64],
        features=[8, 16, 32],
        kernels=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
        strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        norm=["CTNormalization"],
        mask=[False],
        inherits=True,
        with_2d=True,
        multitask=False,
        iteration_scale=1.5,
        seed=11,
    ),
    # region-based labels (sigmoid outputs): "pancreas with lesion" and "lesion", written 1 then 2
    "regions_ct": dict(
        dataset_name="Dataset904_SyntheticRegionsCT",
        channel_names={"0": "CT"},
        modality="ct",
        trainer="nnUNetTrainer",
        mirror_axes=(0, 1, 2),
        folds=["0"],
        spacing=[2.0, 0.75, 0.75],
        transpose_forward=[0, 1, 2],
        patch=[16, 32, 48],
        features=[8, 16, 32],
        kernels=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
        strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        norm=["CTNormalization"],
        mask=[False],
        inherits=False,
        with_2d=False,
        multitask=False,
        regions={"background": 0, "pancreas_or_lesion": [1, 2], "lesion": [2]},
        regions_class_order=[1, 2],
        iteration_scale=1.5,
        seed=11,
    ),
    "two_channel": dict(
        dataset_name="Dataset903_SyntheticTwoChannel",
        channel_names={"0": "T1", "1": "noNorm"},
        modality="mr",
        trainer="nnUNetTrainer_onlyMirror01",
        mirror_axes=(0, 1),
        folds=["all"],
        # original axis order (z, y, x) = (1.0, 1.0, 1.25): the coarsest axis is x, so the planner's
        # transpose puts x first: transpose_forward [2, 0, 1], spacing/patch in (x, z, y) order
        spacing=[1.25, 1.0, 1.0],
        transpose_forward=[2, 0, 1],
        patch=[16, 32, 32],
        features=[6, 12, 24],
        kernels=[[3, 3, 3], [3, 3, 3], [3, 3, 3]],
        strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
        norm=["ZScoreNormalization", "NoNormalization"],
        mask=[True, False],
        inherits=False,
        with_2d=False,
        multitask=False,
        seed=33,
    ),
}

# nnU-Net's cascade: one dataset, one plans.json with 3d_lowres (coarser spacing, its own patch and
# network, "next_stage": "3d_cascade_fullres"), 3d_fullres and 3d_cascade_fullres
# (= {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}), and one model folder per trained
# configuration. The cascade network takes the image plus the one-hot of the previous stage's labels 1, 2.
# Both entries must give the same plans (same seed, same plan fields); only the configuration differs.
CASCADE_CT = dict(
    dataset_name="Dataset905_SyntheticCascadeCT",
    channel_names={"0": "CT"},
    modality="ct",
    trainer="nnUNetTrainer",
    mirror_axes=(0, 1, 2),
    folds=["0"],
    spacing=[2.0, 0.75, 0.75],              # 3d_fullres (and so 3d_cascade_fullres)
    transpose_forward=[0, 1, 2],
    patch=[16, 32, 48],
    features=[8, 16, 32],
    kernels=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
    strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
    lowres=dict(spacing=[2.0, 1.5, 1.5], patch=[16, 16, 20], features=[8, 16, 32],
                kernels=[[3, 3, 3], [3, 3, 3], [3, 3, 3]], strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]]),
    norm=["CTNormalization"],
    mask=[False],
    inherits=False,
    with_2d=False,
    multitask=False,
    seed=55,
)
MODELS["cascade_ct_lowres"] = dict(CASCADE_CT, configuration="3d_lowres", iteration_scale=1.5)
MODELS["cascade_ct_fullres"] = dict(CASCADE_CT, configuration="3d_cascade_fullres")

# --------------------------------------------------------------------------------------------
# synthetic scenes (all geometry in mm, scene centred at the volume centre, axes z, y, x)
# --------------------------------------------------------------------------------------------


def random_scene(rng: np.random.Generator, fov_mm, lesion: bool = True, subtype: int | None = None,
                 modality: str = "ct") -> dict:
    fz, fy, fx = fov_mm
    by = fy / 2 * rng.uniform(0.72, 0.9)
    bx = fx / 2 * rng.uniform(0.72, 0.9)
    az, ay, ax = rng.uniform(6.0, 9.0), rng.uniform(5.0, 7.0), rng.uniform(9.0, 13.0)
    theta = rng.uniform(-0.5, 0.5)
    ext_y = abs(ax * np.sin(theta)) + abs(ay * np.cos(theta))
    ext_x = abs(ax * np.cos(theta)) + abs(ay * np.sin(theta))

    def centre(limit):
        return rng.uniform(-limit, limit) if limit > 0 else 0.0

    pc = np.array([centre(fz / 2 - az - 2.0), centre(by - ext_y - 3.0), centre(bx - ext_x - 3.0)])
    scene = dict(body=(by, bx), pancreas=dict(c=pc, a=(az, ay, ax), theta=theta), modality=modality)
    # a vessel (bright tube along z) beside the pancreas, on the side away from the body centre
    side = -1.0 if pc[2] > 0 else 1.0
    vr = rng.uniform(2.0, 3.0)
    scene["vessel"] = dict(c=(pc[1] + rng.uniform(-3, 3), pc[2] + side * (ext_x + vr + rng.uniform(2.0, 4.0))), r=vr)
    if lesion:
        st = int(rng.integers(3)) if subtype is None else int(subtype)
        r = rng.uniform(0.5, 0.7) * min(az, ay)
        t = rng.uniform(-0.35, 0.35) * ax
        lc = pc + np.array([rng.uniform(-1.0, 1.0), t * np.sin(theta), t * np.cos(theta)])
        scene["lesion"] = dict(c=lc, r=r, subtype=st)
    if modality == "ct":
        scene["hu"] = dict(body=rng.uniform(10, 60), vessel=rng.uniform(160, 190), pancreas=rng.uniform(105, 130),
                           lesion=(SUBTYPE_HU[scene["lesion"]["subtype"]] + rng.uniform(-6, 6)) if lesion else None,
                           noise=rng.uniform(6.0, 11.0))
    else:
        scene["t1"] = dict(body=rng.uniform(200, 300), vessel=rng.uniform(330, 380), pancreas=rng.uniform(440, 500),
                           lesion=rng.uniform(110, 160), noise=rng.uniform(10.0, 18.0))
        scene["c2"] = dict(body=rng.uniform(0.25, 0.35), vessel=0.2, pancreas=rng.uniform(0.5, 0.6),
                           lesion=rng.uniform(0.8, 0.9), noise=0.04)
    return scene


def _ramp(signed_mm, voxel_mm):
    """Partial-volume fraction from an approximate signed distance (positive inside)."""
    return np.clip(signed_mm / voxel_mm + 0.5, 0.0, 1.0)


def render(scene: dict, shape, spacing, rng: np.random.Generator):
    """Renders a scene on a (z, y, x) grid. Returns (channels float64 (C, z, y, x), labels uint8 (z, y, x))."""
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing)], indexing="ij")
    vox = float(np.mean(spacing))
    by, bx = scene["body"]
    fb = np.sqrt((y / by) ** 2 + (x / bx) ** 2)
    wb = _ramp((1 - fb) * (by + bx) / 2, vox)
    vy, vx = scene["vessel"]["c"]
    wv = _ramp(scene["vessel"]["r"] - np.sqrt((y - vy) ** 2 + (x - vx) ** 2), vox) * wb
    p = scene["pancreas"]
    dz, dy, dx = z - p["c"][0], y - p["c"][1], x - p["c"][2]
    u = np.cos(p["theta"]) * dx + np.sin(p["theta"]) * dy
    v = -np.sin(p["theta"]) * dx + np.cos(p["theta"]) * dy
    fp = np.sqrt((dz / p["a"][0]) ** 2 + (v / p["a"][1]) ** 2 + (u / p["a"][2]) ** 2)
    wp = _ramp((1 - fp) * float(np.mean(p["a"][:2])), vox)
    labels = np.zeros(shape, np.uint8)
    labels[fp < 1] = 1
    wl = np.zeros(shape)
    if "lesion" in scene:
        le = scene["lesion"]
        dist = np.sqrt((z - le["c"][0]) ** 2 + (y - le["c"][1]) ** 2 + (x - le["c"][2]) ** 2)
        wl = _ramp(le["r"] - dist, vox)
        labels[dist < le["r"]] = 2

    def compose(vals, background, noise_outside):
        img = background * (1 - wb) + vals["body"] * wb
        img = img * (1 - wv) + vals["vessel"] * wv
        img = img * (1 - wp) + vals["pancreas"] * wp
        if vals["lesion"] is not None:
            img = img * (1 - wl) + vals["lesion"] * wl
        noise = rng.standard_normal(shape) * vals["noise"]
        return img + (noise if noise_outside else noise * (wb > 0))

    if scene["modality"] == "ct":
        return compose(scene["hu"], -1000.0, True)[None], labels
    t1 = np.clip(compose(scene["t1"], 0.0, False), 0.0, None)
    c2 = np.clip(compose(scene["c2"], 0.0, False), 0.0, None)
    outside = wb == 0
    t1[outside] = 0.0
    c2[outside] = 0.0
    return np.stack([t1, c2]), labels


# --------------------------------------------------------------------------------------------
# plans / dataset.json / checkpoint
# --------------------------------------------------------------------------------------------


def arch_entry(spec: dict, dim: int = 3) -> dict:
    return {
        "network_class_name": ARCH_CLASS,
        "arch_kwargs": {
            "n_stages": len(spec["features"]),
            "features_per_stage": list(spec["features"]),
            "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
            "kernel_sizes": spec["kernels"],
            "strides": spec["strides"],
            "n_blocks_per_stage": [1, 2, 2],
            "n_conv_per_stage_decoder": [1, 1],
            "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": list(REQ_IMPORT),
    }


def make_plans(name: str, spec: dict, fg_props: dict, median_spacing, median_shape, median_shape_target) -> dict:
    plans_name = "nnUNetResEncUNetMPlans"
    tf = spec["transpose_forward"]
    tb = [tf.index(i) for i in range(3)]
    config = {
        "data_identifier": f"{plans_name}_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": list(spec["patch"]),
        "median_image_size_in_voxels": [float(v) for v in median_shape_target],
        "spacing": list(spec["spacing"]),
        "normalization_schemes": list(spec["norm"]),
        "use_mask_for_norm": list(spec["mask"]),
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": arch_entry(spec),
        "batch_dice": True,
    }
    configurations = {}
    if spec["with_2d"]:
        spec2d = dict(spec, kernels=[[3, 3]] * 3, strides=[[1, 1], [2, 2], [2, 2]], features=[8, 16, 32])
        c2d = dict(config)
        c2d.update({
            "data_identifier": f"{plans_name}_2d",
            "batch_size": 12,
            "patch_size": list(spec.get("patch_2d", [64, 64])),
            "median_image_size_in_voxels": [float(v) for v in median_shape_target[1:]],
            "spacing": list(spec["spacing"][1:]),
            "architecture": arch_entry(spec2d, dim=2),
            "batch_dice": True,
        })
        configurations["2d"] = c2d
    if spec["inherits"]:
        base = dict(config)
        base["data_identifier"] = f"{plans_name}_3d_base"
        base["patch_size"] = [32, 32, 32]   # overridden by the child
        base["batch_size"] = 4
        configurations["3d_base"] = base
        configurations["3d_fullres"] = {
            "inherits_from": "3d_base",
            "data_identifier": config["data_identifier"],
            "batch_size": config["batch_size"],
            "patch_size": config["patch_size"],
        }
    elif "lowres" in spec:
        # as ExperimentPlanner.plan_experiment writes a cascade: 3d_lowres (batch_dice false, next_stage),
        # 3d_fullres (batch_dice true), then 3d_cascade_fullres = inherits_from + previous_stage only
        low = spec["lowres"]
        lowres = dict(config)
        lowres.update({
            "data_identifier": f"{plans_name}_3d_lowres",
            "patch_size": list(low["patch"]),
            "median_image_size_in_voxels": [float(round(v * f / s)) for v, f, s in
                                            zip(median_shape_target, spec["spacing"], low["spacing"])],
            "spacing": list(low["spacing"]),
            "architecture": arch_entry(dict(spec, **{k: low[k] for k in ("features", "kernels", "strides")})),
            "batch_dice": False,
            "next_stage": "3d_cascade_fullres",
        })
        configurations["3d_lowres"] = lowres
        configurations["3d_fullres"] = config
        configurations["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    else:
        configurations["3d_fullres"] = config
    return {
        "dataset_name": spec["dataset_name"],
        "plans_name": plans_name,
        "original_median_spacing_after_transp": [float(v) for v in median_spacing],
        "original_median_shape_after_transp": [int(round(v)) for v in median_shape],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": list(tf),
        "transpose_backward": tb,
        "configurations": configurations,
        "experiment_planner_used": "nnUNetPlannerResEncM",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": fg_props,
    }


def make_dataset_json(spec: dict, n_training: int) -> dict:
    extra = {"regions_class_order": list(spec["regions_class_order"])} if "regions" in spec else {}
    return {
        "channel_names": dict(spec["channel_names"]),
        "labels": dict(spec.get("regions", LABELS)),
        **extra,
        "numTraining": n_training,
        "file_ending": ".nii.gz",
        "name": spec["dataset_name"],
        "description": "synthetic data made by nnunet-rt's tools/make_fixtures.py",
    }


def foreground_properties(volumes) -> dict:
    """nnU-Net's fingerprint statistics: 10,000 foreground samples per case, pooled."""
    rs = np.random.RandomState(1234)
    n_ch = volumes[0][0].shape[0]
    out = {}
    for c in range(n_ch):
        samples = []
        for data, labels, _ in volumes:
            fg = data[c][labels > 0]
            if fg.size:
                samples.append(rs.choice(fg, 10000, replace=True))
        s = np.concatenate(samples)
        out[str(c)] = {
            "max": float(np.max(s)),
            "mean": float(np.mean(s)),
            "median": float(np.median(s)),
            "min": float(np.min(s)),
            "percentile_00_5": float(np.percentile(s, 0.5)),
            "percentile_99_5": float(np.percentile(s, 99.5)),
            "std": float(np.std(s)),
        }
    return out


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def build_torch_network(spec: dict, plans: dict, dataset_json: dict):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(plans)
    cm = pm.get_configuration(spec.get("configuration", "3d_fullres"))
    # image channels, plus one per foreground label for a cascade's second stage
    n_in = determine_num_input_channels(pm, cm, dataset_json)
    if spec["multitask"]:
        sys.path.insert(0, str(TOOLS / "trainers"))
        from nnUNetTrainerMultiTask import _network_module
        return _network_module().build_from_architecture(cm.network_arch_init_kwargs,
                                                         cm.network_arch_init_kwargs_req_import, n_in, n_outputs(spec),
                                                         return_classification=True)
    return get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                  cm.network_arch_init_kwargs_req_import, n_in, n_outputs(spec), allow_init=True,
                                  deep_supervision=False)


class PatchSampler:
    def __init__(self, volumes, patch, mirror_axes, rng, fg_prob=0.6, lesion_prob=0.3):
        self.items = []
        for data, seg, subtype in volumes:
            pad = [max(0, p - s) for p, s in zip(patch, data.shape[1:])]
            if any(pad):
                widths = [(q // 2, q - q // 2) for q in pad]
                data = np.pad(data, [(0, 0)] + widths)
                seg = np.pad(seg, widths)
            self.items.append((data, seg, subtype, np.argwhere(seg > 0), np.argwhere(seg == 2)))
        self.patch, self.mirror_axes, self.rng = patch, mirror_axes, rng
        self.fg_prob, self.lesion_prob = fg_prob, lesion_prob

    def sample(self, batch):
        xs, ys, cs = [], [], []
        for _ in range(batch):
            data, seg, subtype, fg, les = self.items[self.rng.integers(len(self.items))]
            shape = seg.shape
            r = self.rng.random()
            pts = les if (r < self.lesion_prob and len(les)) else (fg if (r < self.fg_prob and len(fg)) else None)
            if pts is not None:
                c = pts[self.rng.integers(len(pts))]
                start = [int(np.clip(c[d] - self.patch[d] // 2 + self.rng.integers(-self.patch[d] // 4,
                                                                                 self.patch[d] // 4 + 1),
                                     0, shape[d] - self.patch[d])) for d in range(3)]
            else:
                start = [int(self.rng.integers(0, shape[d] - self.patch[d] + 1)) for d in range(3)]
            sl = tuple(slice(s, s + p) for s, p in zip(start, self.patch))
            x, y = data[(slice(None),) + sl], seg[sl]
            for a in self.mirror_axes:
                if self.rng.random() < 0.5:
                    x, y = np.flip(x, a + 1), np.flip(y, a)
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
            cs.append(subtype if (subtype is not None and (y == 2).sum() >= 20) else -1)
        return (torch.from_numpy(np.stack(xs)).float(), torch.from_numpy(np.stack(ys)).long(),
                torch.tensor(cs, dtype=torch.long))


def configuration(spec: dict) -> str:
    return spec.get("configuration", "3d_fullres")


def is_2d(spec: dict) -> bool:
    return configuration(spec) == "2d"


def sample_patch(spec: dict):
    """Patch drawn from the (z, y, x) volumes: one slice for a 2d network."""
    if configuration(spec) == "3d_lowres":
        return spec["lowres"]["patch"]
    return [1, *spec["patch_2d"]] if is_2d(spec) else spec["patch"]


def sample_mirror_axes(spec: dict):
    """The network's mirroring axes as axes of the sampled (z, y, x) patch."""
    return tuple(a + 1 for a in spec["mirror_axes"]) if is_2d(spec) else spec["mirror_axes"]


def network_batch(spec: dict, x, y):
    """Sampled (B, C, z, y, x) patches as the network takes them: slices squeezed for 2d."""
    return (x[:, :, 0], y[:, 0]) if is_2d(spec) else (x, y)


def n_outputs(spec: dict) -> int:
    """Network outputs: one per label (softmax), or one per foreground region (sigmoid)."""
    return len(spec["regions"]) - 1 if "regions" in spec else len(LABELS)


def region_targets(spec: dict, labels):
    """(B, regions, ...) float targets: voxel label in the region, regions in dataset.json order."""
    regions = [r for name, r in spec["regions"].items() if name != "background"]
    return torch.stack([torch.isin(labels, torch.tensor(r)) for r in regions], 1).float()


def regions_to_labels(spec: dict, probabilities):
    """nnU-Net's convert_probabilities_to_segmentation for regions: > 0.5, later regions overwrite."""
    out = torch.zeros(probabilities.shape[:1] + probabilities.shape[2:], dtype=torch.long)
    for i, value in enumerate(spec["regions_class_order"]):
        out[probabilities[:, i] > 0.5] = value
    return out


def region_dice_loss(logits, target):
    probs = torch.sigmoid(logits)
    dims = (0, *range(2, logits.ndim))
    dice = (2 * (probs * target).sum(dims) + 1e-5) / (probs.sum(dims) + target.sum(dims) + 1e-5)
    return 1 - dice.mean()


def dice_loss(logits, target, n_classes):
    probs = torch.softmax(logits, 1)
    onehot = torch.nn.functional.one_hot(target, n_classes).movedim(-1, 1).float()
    dims = (0, *range(2, logits.ndim))  # batch Dice, as nnU-Net's batch_dice
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1e-5) / (denom + 1e-5)
    return 1 - dice[1:].mean()


def train_fold(net, volumes, spec, fold_seed: int, iterations: int, batch: int = 3, log=print):
    torch.manual_seed(fold_seed)
    rng = np.random.default_rng(fold_seed)
    sampler = PatchSampler(volumes, sample_patch(spec), sample_mirror_axes(spec), rng,
                           lesion_prob=0.5 if spec["multitask"] else 0.25)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=iterations, pct_start=0.1)
    net.train()
    losses, lrs = [], []
    t0 = time.time()
    for it in range(iterations):
        x, y, c = sampler.sample(batch)
        x, y = network_batch(spec, x, y)
        out = net(x)
        seg, cls = (out if isinstance(out, tuple) else (out, None))
        if "regions" in spec:
            target = region_targets(spec, y)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(seg, target) + region_dice_loss(seg, target)
        else:
            loss = torch.nn.functional.cross_entropy(seg, y) + dice_loss(seg, y, len(LABELS))
        if cls is not None and (c >= 0).any() and it >= iterations // 4:
            # the head joins once the segmentation has started to converge
            loss = loss + torch.nn.functional.cross_entropy(cls, c, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        lrs.append(float(sched.get_last_lr()[0]))
        if (it + 1) % 50 == 0:
            log(f"    iter {it + 1}/{iterations}  loss {np.mean(losses[-50:]):.4f}  ({time.time() - t0:.0f} s)")
    net.eval()
    return losses, lrs


def write_checkpoint(path: Path, net, plans, dataset_json, fold: str, spec, losses, lrs, iterations):
    checkpoint = {
        "network_weights": net.state_dict(),
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": {"train_losses": [float(np.mean(losses[i:i + 50])) for i in range(0, len(losses), 50)],
                    "lrs": lrs[::50]},
        "_best_ema": None,
        "current_epoch": iterations // 50,
        "init_args": {"plans": plans, "configuration": configuration(spec), "fold": fold if fold == "all" else int(fold),
                      "dataset_json": dataset_json, "device": torch.device("cpu")},
        "trainer_name": spec["trainer"],
        "inference_allowed_mirroring_axes": tuple(spec["mirror_axes"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def training_volumes(spec: dict, n: int, seed: int):
    """Raw synthetic training cases at varied original spacings: list of (data (C,z,y,x), labels, spacing, subtype)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fov = (rng.uniform(26, 48), rng.uniform(40, 60), rng.uniform(44, 66))
        lesion = rng.random() < 0.78
        if spec["modality"] == "ct":
            sp = (float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0])), *([float(rng.uniform(0.6, 1.0))] * 2))
        else:
            inplane = float(rng.uniform(0.85, 1.15))
            sp = (inplane, inplane, float(rng.uniform(1.1, 1.5)))    # coarse axis = x (sagittal-like)
            fov = (fov[2], fov[1], fov[0] + 10)
        shape = tuple(int(round(f / s)) for f, s in zip(fov, sp))
        scene = random_scene(rng, [n_ * s for n_, s in zip(shape, sp)], lesion=lesion, modality=spec["modality"])
        data, labels = render(scene, shape, sp, rng)
        if spec["modality"] == "ct":
            data = np.round(data)
        subtype = scene["lesion"]["subtype"] if lesion and spec["multitask"] else None
        out.append((data.astype(np.float32), labels, sp, subtype))
    return out


def simulated_previous_stage(seg: np.ndarray, spec: dict, labels_fg, rng: np.random.Generator) -> np.ndarray:
    """Stand-in for the 3d_lowres prediction a cascade's second stage is trained with (nnU-Net uses the
    lowres model's cross-validation predictions): the preprocessed ground truth sent to the lowres grid
    and back with nnU-Net's segmentation resampling (blocky edges, as a real lowres result), then, at
    random, the foreground grown or shrunk by one voxel in-plane and/or the lesion dropped, so that the
    network has to look at the image too. Returns the one-hot (len(labels_fg), z, y, x) float32, as
    convert_labelmap_to_one_hot makes it at inference."""
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape, resample_data_or_seg_to_shape
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot
    from scipy.ndimage import binary_dilation, binary_erosion

    full_sp, low_sp = spec["spacing"], spec["lowres"]["spacing"]
    kw = dict(is_seg=True, order=1, order_z=0, force_separate_z=None)
    low = resample_data_or_seg_to_shape(seg[None].astype(np.float32), compute_new_shape(seg.shape, full_sp, low_sp),
                                        full_sp, low_sp, **kw)
    s = resample_data_or_seg_to_shape(low, seg.shape, low_sp, full_sp, **kw)[0].astype(np.int64)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    r = rng.random()
    if r < 0.25:
        s[binary_dilation(s > 0, in_plane) & (s == 0)] = 1
    elif r < 0.5:
        s[~binary_erosion(s > 0, in_plane)] = 0
    if rng.random() < 0.15:
        s[s == 2] = 1
    return convert_labelmap_to_one_hot(s, labels_fg, np.float32)


def make_model(name: str, iterations: int, n_train: int, only_folds=None, log=print):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    spec = MODELS[name]
    log(f"== model {name}")
    raw = training_volumes(spec, n_train, spec["seed"])
    fg_props = foreground_properties([(d, l, s) for d, l, s, _ in raw])
    tf = spec["transpose_forward"]
    spacings_t = np.array([[s[i] for i in tf] for _, _, s, _ in raw])
    shapes_t = np.array([[d.shape[1:][i] for i in tf] for d, _, _, _ in raw])
    median_spacing = np.median(spacings_t, 0)
    median_shape = np.median(shapes_t, 0)
    target_shape = median_shape * median_spacing / np.array(spec["spacing"])
    dataset_json = make_dataset_json(spec, n_train)
    plans = make_plans(name, spec, fg_props, median_spacing, median_shape, np.round(target_shape))
    pm = PlansManager(plans)
    cm = pm.get_configuration(configuration(spec))
    pre = DefaultPreprocessor(verbose=False)
    volumes = []
    for data, labels, sp, subtype in raw:
        d, s, _ = pre.run_case_npy(data, labels[None].astype(np.int16), {"spacing": list(sp)}, pm, cm, dataset_json)
        s = np.clip(s[0], 0, None).astype(np.int64)
        volumes.append((d.astype(np.float32), s, subtype))
    if cm.previous_stage_name is not None:
        # a cascade's second stage: the image channels, then the one-hot of a previous-stage segmentation
        rng = np.random.default_rng(spec["seed"] + 7)
        labels_fg = pm.get_label_manager(dataset_json).foreground_labels
        volumes = [(np.concatenate([d, simulated_previous_stage(s, spec, labels_fg, rng)]), s, st)
                   for d, s, st in volumes]
    log(f"   {len(volumes)} training volumes preprocessed, e.g. shape {volumes[0][0].shape}")

    model_dir = WORK / "models" / name
    folds = spec["folds"] if only_folds is None else [f for f in spec["folds"] if f in only_folds]
    if only_folds is None and model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "plans.json").write_text(json.dumps(plans, indent=4) + "\n")
    (model_dir / "dataset.json").write_text(json.dumps(dataset_json, indent=4) + "\n")
    for fold in folds:
        k = spec["folds"].index(fold)
        # each fold leaves a different part of the synthetic set out, as cross-validation would
        n_val = max(1, len(volumes) // 5)
        val_idx = set(range(k * n_val, (k + 1) * n_val)) if fold != "all" else set()
        train_vols = [v for i, v in enumerate(volumes) if i not in val_idx]
        check_vols = [volumes[i] for i in sorted(val_idx)] if val_idx else train_vols[:n_val]
        n_iter = int(round(iterations * spec.get("iteration_scale", 1.0)))
        for attempt in range(3):
            # a run that converges to "never predict the lesion" is retried with another seed
            fold_seed = spec["seed"] * 100 + k + spec.get("seed_offset", {}).get(fold, 0) + 1000 * attempt
            torch.manual_seed(fold_seed)
            net = build_torch_network(spec, plans, dataset_json)
            log(f"  fold {fold}: {sum(p.numel() for p in net.parameters())} parameters, {len(train_vols)} volumes, "
                f"seed {fold_seed}")
            losses, lrs = train_fold(net, train_vols, spec, fold_seed, n_iter, batch=12 if is_2d(spec) else 3,
                                     log=log)
            dice = _report_validation(net, check_vols, spec, log)
            if dice[0] >= 0.8 and dice[1] >= 0.6:
                break
            log("    not converged; retrying with another seed")
        else:
            raise SystemExit(f"fold {fold} of {name} did not converge")
        if spec["multitask"]:
            net.return_classification = False
        write_checkpoint(model_dir / f"fold_{fold}" / "checkpoint_final.pth", net, plans, dataset_json, fold, spec,
                         losses, lrs, n_iter)
    export_model(name, log)


def _report_validation(net, vols, spec, log):
    """Patch-level Dice on held-out volumes (a sanity check, not a benchmark)."""
    rng = np.random.default_rng(0)
    sampler = PatchSampler(vols, sample_patch(spec), (), rng, fg_prob=1.0, lesion_prob=0.5)
    x, y, c = sampler.sample(16)
    x, y = network_batch(spec, x, y)
    with torch.no_grad():
        out = net(x)
    seg, cls = out if isinstance(out, tuple) else (out, None)
    pred = regions_to_labels(spec, torch.sigmoid(seg)) if "regions" in spec else seg.argmax(1)
    dices = []
    for k in (1, 2):
        inter = ((pred == k) & (y == k)).sum().item()
        den = (pred == k).sum().item() + (y == k).sum().item()
        dices.append(2 * inter / den if den else float("nan"))
    msg = f"    validation patches: Dice pancreas {dices[0]:.3f}, lesion {dices[1]:.3f}"
    if cls is not None and (c >= 0).any():
        ok = (cls.argmax(1)[c >= 0] == c[c >= 0]).float().mean().item()
        msg += f", head accuracy {ok:.2f} on {(c >= 0).sum().item()} lesion patches"
    log(msg)
    return dices


def export_model(name: str, log=print):
    spec = MODELS[name]
    model_dir = WORK / "models" / name
    argv = [str(model_dir), "--threads", "2"]
    if spec["multitask"]:
        argv += ["--network-module", str(TOOLS / "networks" / "multitask_resenc.py"),
                 "--class-names", ",".join(SUBTYPES), "--evidence-labels", "2"]
    rc = export_onnx.main(argv)
    if rc != 0:
        raise SystemExit(f"export of {name} failed")
    dest = FIXTURES / "models" / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in ("plans.json", "dataset.json"):
        shutil.copy2(model_dir / f, dest / f)
    for fold in spec["folds"]:
        (dest / f"fold_{fold}").mkdir()
        for f in ("model.onnx", "nnunet_rt_export.json"):
            shutil.copy2(model_dir / f"fold_{fold}" / f, dest / f"fold_{fold}" / f)
    log(f"   copied to {dest.relative_to(REPO)}")


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _oblique_direction():
    a = np.deg2rad(25.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])   # about x
    b = np.deg2rad(-12.0)
    rot = rot @ np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])  # about y
    flip = np.diag([-1.0, 1.0, -1.0])
    return tuple(float(v) for v in (rot @ flip).ravel())


# spacing and origin in SimpleITK order (x, y, z); shape in array order (z, y, x)
CASES = [
    dict(id="aniso_int16", model="resenc_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.8, 0.8, 3.0), shape=(10, 40, 44), origin=(-20.0, -19.2, 100.0), direction=IDENTITY,
         seed=101, lesion=True, probabilities=True,
         exercises="int16 CT; z/in-plane anisotropy 3.75 > 3: separate-z resampling (2D cubic in-plane + "
                   "nearest z) and separate-z export (2D linear + nearest z); z 15 < patch 16: padding"),
    dict(id="iso_float", model="resenc_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="float32",
         spacing=(1.0, 1.0, 1.2), shape=(36, 32, 40), origin=(0.0, 0.0, 0.0), direction=IDENTITY,
         seed=102, lesion=True,
         exercises="float32 CT (non-integer values); near-isotropic: full 3D cubic resampling, z downsampled; "
                   "3D linear export"),
    dict(id="zero_border", model="resenc_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.75, 0.75, 3.0), shape=(12, 46, 50), origin=(5.0, -7.5, -30.0), direction=IDENTITY,
         seed=103, lesion=True, zero_frame=dict(z=(1, 0), y=(4, 3), x=(6, 2)),
         exercises="int16 CT with a 0-valued frame (scanner padding): crop to the nonzero box on all axes, "
                   "paste back at export; in-plane spacing equals the target (slices kept exactly), only z "
                   "resampled (separate z, nearest)"),
    dict(id="small", model="resenc_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.9, 0.9, 2.5), shape=(8, 30, 36), origin=(-10.0, 10.0, 0.0), direction=IDENTITY,
         seed=104, lesion=True,
         exercises="smaller than the patch after resampling on z (10 < 16) and x (43 < 48): symmetric zero "
                   "padding, odd pad at the end; anisotropy 2.78 < 3: full 3D cubic with z upsampled"),
    dict(id="oblique", model="resenc_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.7, 0.8, 2.2), shape=(12, 40, 44), origin=(-123.4, 56.7, -890.1),
         direction=_oblique_direction(), seed=105, lesion=True,
         exercises="non-identity (rotated + flipped) direction and non-zero origin carried to the output; "
                   "different x/y spacings; separate z (2.2/0.7 = 3.14 > 3)"),
    dict(id="multitask_lesion", model="multitask_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.8, 0.8, 2.5), shape=(10, 40, 44), origin=(0.0, 0.0, 0.0), direction=IDENTITY,
         seed=106, lesion=True, subtype=2, probabilities=True, classification=True,
         exercises="multi-task model (two ONNX outputs); clear lesion: classification weighted by predicted "
                   "lesion probability; probabilities on the original grid"),
    dict(id="multitask_nolesion", model="multitask_ct", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(1.0, 1.0, 1.5), shape=(24, 36, 40), origin=(0.0, 0.0, 0.0), direction=IDENTITY,
         seed=107, lesion=False, classification=True,
         exercises="multi-task model, no lesion in the image nor in the segmentation: fold 1's tiles hold "
                   "less than one voxel's worth of lesion probability, so its classification falls back to "
                   "foreground (pancreas) weights, fold 0's does not (soft probabilities sum to > 1); "
                   "full 3D cubic resampling, no padding"),
    dict(id="two_channel", model="two_channel", folds=["all"], step=0.5, mirror=True, dtype="float32",
         spacing=(1.3, 0.95, 0.95), shape=(32, 38, 26), origin=(12.0, -3.0, 40.0), direction=IDENTITY,
         seed=108, lesion=True,
         exercises="two input channels (_0000 ZScore with use_mask_for_norm, _0001 NoNormalization); zero "
                   "background: crop + masked normalisation; transpose_forward [2,0,1] (coarse x axis first); "
                   "restricted mirroring (0, 1) = 4 TTA passes; fold 'all'"),
    dict(id="aniso_2d", model="resenc_ct_2d", folds=["0", "1"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.8, 0.8, 3.0), shape=(10, 40, 44), origin=(-20.0, -19.2, 100.0), direction=IDENTITY,
         seed=101, lesion=True, probabilities=True, same_input_as="aniso_int16", ensemble_with="aniso_int16",
         exercises="2d configuration on aniso_int16's image: every slice through the 2D network, in-plane "
                   "padding to the 64x64 patch, 2D Gaussian, mirroring (0, 1) = 4 passes; slice spacing kept; "
                   "ensemble of this 2d and aniso_int16's 3d_fullres probabilities (nnUNetv2_ensemble)"),
    dict(id="wide_2d", model="resenc_ct_2d", folds=["0"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.6, 0.6, 2.5), shape=(6, 90, 100), origin=(3.0, -4.0, 10.0), direction=IDENTITY,
         seed=110, lesion=True,
         exercises="2d configuration, slices larger than the patch in-plane (72x80 -> 2x2 tiles per slice); "
                   "in-plane downsampling only"),
    dict(id="regions", model="regions_ct", folds=["0"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.8, 0.8, 2.5), shape=(10, 40, 44), origin=(0.0, 10.0, -5.0), direction=IDENTITY,
         seed=111, lesion=True, probabilities=True,
         exercises="region-based labels: sigmoid outputs for (pancreas or lesion) and (lesion), region "
                   "on where p > 0.5, written in regions_class_order [1, 2]; probabilities are the "
                   "sigmoids, 0 outside the crop box; separate z"),
    dict(id="same_spacing", model="resenc_ct", folds=["0"], step=0.75, mirror=False, dtype="int16",
         spacing=(0.75, 0.75, 2.0), shape=(14, 36, 52), origin=(-21.0, -15.0, 8.0), direction=IDENTITY,
         seed=109, lesion=True,
         exercises="input exactly at the target spacing: no resampling in preprocessing or export; "
                   "TTA off; step size 0.75; one fold"),
    dict(id="cascade", model="cascade_ct_fullres", previous_stage=dict(model="cascade_ct_lowres", folds=["0"]),
         folds=["0"], step=0.5, mirror=True, dtype="int16",
         spacing=(0.8, 0.8, 2.5), shape=(10, 38, 42), origin=(-16.0, 12.0, 30.0), direction=IDENTITY,
         seed=112, lesion=True, probabilities=True,
         exercises="cascade 3d_lowres -> 3d_cascade_fullres: the lowres model at 2.0x1.5x1.5 mm (4 tiles), its "
                   "segmentation exported to the input grid, then read back by the second stage: cropped with "
                   "the image's box, resampled like a segmentation (separate z: per-slice linear one-hot "
                   "argmax, nearest z) to the fullres grid, one-hot of labels 1, 2 appended to the image "
                   "channel (3 network inputs)"),
]


def case_scene(case: dict):
    if "same_input_as" in case:
        # another configuration on the very same image (2d vs 3d, ensembles)
        base = next(c for c in CASES if c["id"] == case["same_input_as"])
        case = dict(base, model=case["model"])
    rng = np.random.default_rng(case["seed"])
    spec = MODELS[case["model"]]
    sp_zyx = tuple(reversed(case["spacing"]))
    fov = [n * s for n, s in zip(case["shape"], sp_zyx)]
    scene = random_scene(rng, fov, lesion=case["lesion"], subtype=case.get("subtype"), modality=spec["modality"])
    data, labels = render(scene, case["shape"], sp_zyx, rng)
    if "zero_frame" in case:
        zf = case["zero_frame"]
        for axis, (lo, hi) in enumerate((zf["z"], zf["y"], zf["x"])):
            idx = [slice(None)] * 4
            if lo:
                idx[axis + 1] = slice(0, lo)
                data[tuple(idx)] = 0
            if hi:
                idx[axis + 1] = slice(data.shape[axis + 1] - hi, None)
                data[tuple(idx)] = 0
    return data, labels, scene


def write_image(arr: np.ndarray, path: Path, spacing, origin, direction):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(v) for v in spacing))
    img.SetOrigin(tuple(float(v) for v in origin))
    img.SetDirection(tuple(float(v) for v in direction))
    sitk.WriteImage(img, str(path), useCompression=True)


def versions() -> dict:
    from importlib.metadata import version

    out = {}
    for dist in ("nnunetv2", "torch", "numpy", "scipy", "scikit-image", "SimpleITK", "acvl-utils",
                 "dynamic-network-architectures", "onnxruntime",
                 "batchgenerators"):  # its resize_segmentation resamples a cascade's previous-stage labels
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = None
    return out


def _make_predictor(cls, model_dir: Path, case: dict):
    pred = cls(tile_step_size=case["step"], use_gaussian=True, use_mirroring=case["mirror"],
               perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
               verbose_preprocessing=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(str(model_dir), use_folds=tuple(case["folds"]),
                                              checkpoint_name="checkpoint_final.pth")
    return pred


def _grid_info(pdata: np.ndarray, props: dict, pm, cm, step: float) -> dict:
    """nnU-Net's resampling decisions (preprocessing, export) and sliding-window tiles for a preprocessed case."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    tf = pm.transpose_forward
    sp_t = [props["spacing"][i] for i in tf]
    # a 2d configuration keeps the slice spacing and tiles each slice (nnU-Net's preprocessor and predictor)
    target_sp = list(cm.spacing) if len(cm.spacing) == 3 else [sp_t[0], *cm.spacing]
    sep_in, ax_in = determine_do_sep_z_and_axis(None, sp_t, target_sp)
    sep_out, ax_out = determine_do_sep_z_and_axis(None, target_sp, sp_t)
    spatial = list(pdata.shape[1:])[-len(cm.patch_size):]
    padded = [max(s, p) for s, p in zip(spatial, cm.patch_size)]
    steps = compute_steps_for_sliding_window(padded, cm.patch_size, step)
    if len(cm.patch_size) == 2:
        padded = [pdata.shape[1], *padded]
        steps = [list(range(pdata.shape[1])), *steps]
    n_tiles = int(np.prod([len(s) for s in steps]))
    same = list(pdata.shape[1:]) == list(props["shape_after_cropping_and_before_resampling"])
    return {
        "resampling": {
            "preprocessing": "none" if same
            else (f"separate_z axis {ax_in[0] if hasattr(ax_in, '__len__') else ax_in}" if sep_in else "3d"),
            "export": "none" if same
            else (f"separate_z axis {ax_out[0] if hasattr(ax_out, '__len__') else ax_out}" if sep_out else "3d"),
        },
        "tiles": {"padded_shape": [int(v) for v in padded], "steps": [[int(v) for v in s] for s in steps],
                  "count": n_tiles},
    }


def make_case(case: dict, log=print, check_sequential: bool = False):
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

    cid = case["id"]
    spec = MODELS[case["model"]]
    model_dir = WORK / "models" / case["model"]
    cdir = FIXTURES / "cases" / cid
    if cdir.exists():
        shutil.rmtree(cdir)
    (cdir / "input").mkdir(parents=True)
    (cdir / "reference").mkdir()
    log(f"== case {cid}")

    data, _labels, scene = case_scene(case)
    files = []
    for c in range(data.shape[0]):
        if case["dtype"] == "int16":
            arr = np.round(data[c]).astype(np.int16)
        else:
            # float32 with non-integer values, quantised (1/8 of the channel's unit; 1/1024 for 0..1 data)
            # so that the NIfTI files compress well
            q = 1024.0 if data[c].max() <= 4.0 else 8.0
            arr = (np.round(data[c] * q) / q).astype(np.float32)
        f = cdir / "input" / f"{cid}_{c:04d}.nii.gz"
        write_image(arr, f, case["spacing"], case["origin"], case["direction"])
        files.append(str(f))

    # a cascade's second stage reads the previous stage's segmentation file, made here first
    prev_seg, prev_info = previous_stage_reference(case, files, cdir, log) if "previous_stage" in case else (None, None)
    pred = _make_predictor(nnUNetPredictor, model_dir, case)
    pm, cm, dsj = pred.plans_manager, pred.configuration_manager, pred.dataset_json
    pre = cm.preprocessor_class(verbose=False)
    pdata, pseg, props = pre.run_case(files, prev_seg, pm, cm, dsj)
    assert pdata.dtype == np.float32
    if prev_seg is not None:
        # as nnU-Net's data iterators do: one-hot of the resampled previous-stage labels after the image channels
        onehot = convert_labelmap_to_one_hot(pseg[0], pm.get_label_manager(dsj).foreground_labels, pdata.dtype)
        prev_info["one_hot_voxels"] = [int(v) for v in onehot.reshape(len(onehot), -1).sum(1)]
        prev_info["outside_nonzero_mask_voxels"] = int((pseg[0] < 0).sum())
        prev_info["segmentation_resampling"] = {"function": cm.configuration["resampling_fn_seg"],
                                                "kwargs": cm.configuration["resampling_fn_seg_kwargs"]}
        pdata = np.vstack((pdata, onehot))
    np.save(cdir / "reference" / "preprocessed.npy", pdata)
    t0 = time.time()
    logits = pred.predict_logits_from_preprocessed_data(torch.from_numpy(pdata)).cpu()
    t_pred = time.time() - t0
    assert logits.dtype == torch.float16
    np.save(cdir / "reference" / "logits.npy", logits.numpy())

    with tempfile.TemporaryDirectory() as tmp:
        export_prediction_from_logits(logits.clone(), props, cm, pm, dsj, os.path.join(tmp, cid), False)
        shutil.copy2(os.path.join(tmp, cid + ".nii.gz"), cdir / "reference" / "seg.nii.gz")
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(cdir / "reference" / "seg.nii.gz")))
        if case.get("probabilities"):
            os.makedirs(os.path.join(tmp, "p"))
            export_prediction_from_logits(logits.clone(), props, cm, pm, dsj, os.path.join(tmp, "p", cid), True)
            probs = np.load(os.path.join(tmp, "p", cid + ".npz"))["probabilities"].astype(np.float32)
            np.save(cdir / "reference" / "probabilities.npy", probs)
            seg_p = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(tmp, "p", cid + ".nii.gz")))
            n_diff = int((seg_p != seg).sum())
            log(f"   probabilities {probs.shape}; seg from probabilities differs in {n_diff} voxels")
        if check_sequential:
            # what nnUNetv2_predict -device cpu -npp 0 -nps 0 does, start to end
            seq = _make_predictor(nnUNetPredictor, model_dir, case)
            os.makedirs(os.path.join(tmp, "seq"))
            with contextlib.redirect_stdout(io.StringIO()):
                seq.predict_from_files_sequential([files], [os.path.join(tmp, "seq", cid)], save_probabilities=False)
            seg_s = sitk.ReadImage(os.path.join(tmp, "seq", cid + ".nii.gz"))
            same = np.array_equal(sitk.GetArrayFromImage(seg_s), seg)
            log(f"   predict_from_files_sequential gives the same segmentation: {same}")
            if not same:
                raise SystemExit("sequential prediction differs from the stage-by-stage reference")
    if prev_seg is not None:
        check_cascade_end_to_end(case, files, cdir, log)

    # confidence of the reference logits
    lg = logits.float().numpy()
    top2 = np.sort(lg, axis=0)[-2:]
    gap = top2[1] - top2[0]
    frac_tie = float((gap < 0.05).mean())
    ct = {int(k): int(v) for k, v in zip(*np.unique(seg, return_counts=True))}
    grid = _grid_info(pdata, props, pm, cm, case["step"])
    n_tiles = grid["tiles"]["count"]

    info = {
        "case_id": cid,
        "exercises": case["exercises"],
        "model": case["model"],
        "folds": list(case["folds"]),
        "step_size": case["step"],
        "use_mirroring": case["mirror"],
        "input_files": [os.path.basename(f) for f in files],
        "input_dtype": case["dtype"],
        "properties": {
            "spacing": [float(v) for v in props["spacing"]],
            "shape_before_cropping": [int(v) for v in props["shape_before_cropping"]],
            "bbox_used_for_cropping": [[int(a), int(b)] for a, b in props["bbox_used_for_cropping"]],
            "shape_after_cropping_and_before_resampling": [int(v) for v in
                                                           props["shape_after_cropping_and_before_resampling"]],
        },
        "sitk": {
            "spacing": [float(v) for v in props["sitk_stuff"]["spacing"]],
            "origin": [float(v) for v in props["sitk_stuff"]["origin"]],
            "direction": [float(v) for v in props["sitk_stuff"]["direction"]],
        },
        "preprocessed_shape": [int(v) for v in pdata.shape],
        "resampling": grid["resampling"],
        "tiles": grid["tiles"],
        "reference_stats": {
            "label_voxels": ct,
            "fraction_top2_logit_gap_below_0.05": frac_tie,
            "nnunet_seconds": round(t_pred, 2),
        },
        "versions": versions(),
    }
    if prev_info is not None:
        info["previous_stage"] = prev_info
    if case.get("classification"):
        info["classification"] = classification_reference(case, model_dir, pdata, logits, log)
    if case.get("ensemble_with"):
        info["ensemble"] = ensemble_reference(case, cdir, pm, dsj, log)
    (cdir / "reference" / "case.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"   input {case['shape']} {case['dtype']} spacing {case['spacing']}; preprocessed {pdata.shape}; "
        f"{n_tiles} tiles; labels {ct}; near-ties {frac_tie:.2e}; {t_pred:.1f} s")
    return info


def previous_stage_reference(case: dict, files, cdir: Path, log):
    """The first stage of a cascade, as nnUNetv2_predict runs the 3d_lowres model on its own (same step
    size and mirroring): DefaultPreprocessor.run_case -> reference/lowres_preprocessed.npy,
    predict_logits_from_preprocessed_data -> lowres_logits.npy (float16, lowres grid),
    export_prediction_from_logits -> lowres_seg.nii.gz (input grid and geometry): the file the second stage
    reads (nnUNetv2_predict -prev_stage_predictions). Returns its path and the stage's case.json entry."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    prev = case["previous_stage"]
    low_conf, next_conf = configuration(MODELS[prev["model"]]), configuration(MODELS[case["model"]])
    plans = [json.loads((WORK / "models" / m / "plans.json").read_text()) for m in (prev["model"], case["model"])]
    if plans[0] != plans[1]:
        raise SystemExit(f"{prev['model']} and {case['model']} do not share one plans.json")
    pred = _make_predictor(nnUNetPredictor, WORK / "models" / prev["model"], dict(case, folds=prev["folds"]))
    pm, cm, dsj = pred.plans_manager, pred.configuration_manager, pred.dataset_json
    if pm.get_configuration(next_conf).previous_stage_name != low_conf or next_conf not in (cm.next_stage_names or []):
        raise SystemExit(f"{next_conf} does not follow {low_conf} in the plans")
    ref = cdir / "reference"
    pdata, _, props = cm.preprocessor_class(verbose=False).run_case(files, None, pm, cm, dsj)
    assert pdata.dtype == np.float32
    np.save(ref / "lowres_preprocessed.npy", pdata)
    t0 = time.time()
    logits = pred.predict_logits_from_preprocessed_data(torch.from_numpy(pdata)).cpu()
    t_pred = time.time() - t0
    assert logits.dtype == torch.float16
    np.save(ref / "lowres_logits.npy", logits.numpy())
    with tempfile.TemporaryDirectory() as tmp:
        export_prediction_from_logits(logits.clone(), props, cm, pm, dsj, os.path.join(tmp, case["id"]), False)
        shutil.copy2(os.path.join(tmp, case["id"] + dsj["file_ending"]), ref / "lowres_seg.nii.gz")
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(ref / "lowres_seg.nii.gz")))
    ct = {int(k): int(v) for k, v in zip(*np.unique(seg, return_counts=True))}
    grid = _grid_info(pdata, props, pm, cm, case["step"])
    log(f"   previous stage {prev['model']} ({low_conf}): preprocessed {pdata.shape}, {grid['tiles']['count']} tiles, "
        f"labels {ct}; {t_pred:.1f} s")
    return str(ref / "lowres_seg.nii.gz"), {
        "model": prev["model"],
        "configuration": low_conf,
        "folds": list(prev["folds"]),
        "files": {"preprocessed": "lowres_preprocessed.npy", "logits": "lowres_logits.npy",
                  "segmentation": "lowres_seg.nii.gz"},
        "preprocessed_shape": [int(v) for v in pdata.shape],
        "resampling": grid["resampling"],
        "tiles": grid["tiles"],
        "label_voxels": ct,
        "nnunet_seconds": round(t_pred, 2),
    }


def check_cascade_end_to_end(case: dict, files, cdir: Path, log):
    """nnUNetv2_predict for both stages, start to end, on nnU-Net's multiprocessing path (predict_from_files):
    the 3d_lowres model writes <case id>.nii.gz into a folder, the cascade model reads it from there
    (folder_with_segs_from_prev_stage). Both segmentations must equal the stage-by-stage references."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    prev, cid, ref = case["previous_stage"], case["id"], cdir / "reference"
    with_probs = bool(case.get("probabilities"))
    with tempfile.TemporaryDirectory() as tmp:
        low_dir, out_dir = os.path.join(tmp, "lowres"), os.path.join(tmp, "cascade")
        mp = dict(num_processes_preprocessing=1, num_processes_segmentation_export=1)
        with contextlib.redirect_stdout(io.StringIO()):
            low = _make_predictor(nnUNetPredictor, WORK / "models" / prev["model"], dict(case, folds=prev["folds"]))
            low.predict_from_files([files], low_dir, save_probabilities=False, **mp)
            full = _make_predictor(nnUNetPredictor, WORK / "models" / case["model"], case)
            full.predict_from_files([files], out_dir, save_probabilities=with_probs,
                                    folder_with_segs_from_prev_stage=low_dir, **mp)
        problems = []
        for name, path in (("lowres_seg.nii.gz", low_dir), ("seg.nii.gz", out_dir)):
            a = sitk.ReadImage(str(ref / name))
            b = sitk.ReadImage(os.path.join(path, cid + ".nii.gz"))
            same = (np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
                    and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
                    and a.GetDirection() == b.GetDirection())
            log(f"   predict_from_files (both stages, folder_with_segs_from_prev_stage) gives the same {name}: {same}")
            if not same:
                problems.append(name)
        if with_probs:
            p = np.load(os.path.join(out_dir, cid + ".npz"))["probabilities"].astype(np.float32)
            same = np.array_equal(p, np.load(ref / "probabilities.npy"))
            log(f"   ... and the same probabilities: {same}")
            if not same:
                problems.append("probabilities.npy")
    if problems:
        raise SystemExit(f"nnU-Net's end-to-end cascade prediction differs from the stage-by-stage reference: "
                         f"{problems}")


def ensemble_reference(case: dict, cdir: Path, pm, dsj: dict, log):
    """nnUNetv2_ensemble on this case's probabilities and those of the case it names (same input image,
    another configuration): nnU-Net's own average_probabilities and convert_probabilities_to_segmentation."""
    from nnunetv2.ensembling.ensemble import average_probabilities

    other = FIXTURES / "cases" / case["ensemble_with"]
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, d in enumerate((other, cdir)):
            f = os.path.join(tmp, f"member{i}.npz")
            np.savez_compressed(f, probabilities=np.load(d / "reference" / "probabilities.npy"))
            files.append(f)
        probs = average_probabilities(files)
    seg = pm.get_label_manager(dsj).convert_probabilities_to_segmentation(probs)
    seg = np.asarray(seg).astype(np.uint8)
    np.save(cdir / "reference" / "ensemble_seg.npy", seg)
    ct = {int(k): int(v) for k, v in zip(*np.unique(seg, return_counts=True))}
    log(f"   ensemble with {case['ensemble_with']}: labels {ct}")
    return {"members": [case["ensemble_with"], case["id"]], "label_voxels": ct,
            "file": "ensemble_seg.npy (z, y, x), from nnunetv2.ensembling.ensemble.average_probabilities"}


# --------------------------------------------------------------------------------------------
# case classification (independent implementation of the lesion-weighted policy)
# --------------------------------------------------------------------------------------------


def _softmax64(v: np.ndarray, axis=0) -> np.ndarray:
    v = v.astype(np.float64)
    v = v - v.max(axis=axis, keepdims=True)
    e = np.exp(v)
    return e / e.sum(axis=axis, keepdims=True)


def classification_reference(case: dict, model_dir: Path, pdata: np.ndarray, logits_ref, log):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class RecordingPredictor(nnUNetPredictor):
        """nnU-Net's predictor; each tile also runs the classification head on the same flips."""

        records = []

        @torch.inference_mode()
        def _internal_maybe_mirror_and_predict(self, x):
            net = self.network
            mirror_axes = self.allowed_mirroring_axes if self.use_mirroring else None
            net.return_classification = True
            try:
                prediction, cls = net(x)
                head = [cls[0].double().numpy()]
                if mirror_axes is not None:
                    axes = [m + 2 for m in mirror_axes]
                    combos = [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
                    for ax in combos:
                        s, c = net(torch.flip(x, ax))
                        prediction += torch.flip(s, ax)
                        head.append(c[0].double().numpy())
                    prediction /= (len(combos) + 1)
            finally:
                net.return_classification = False
            self.records.append((prediction[0].double().numpy(), np.mean(head, axis=0)))
            return prediction

    pred = _make_predictor(RecordingPredictor, model_dir, case)
    RecordingPredictor.records = []
    logits = pred.predict_logits_from_preprocessed_data(torch.from_numpy(pdata)).cpu()
    if not torch.equal(logits, logits_ref):
        raise SystemExit("the recording predictor changed the segmentation logits")
    records = RecordingPredictor.records
    n_folds = len(case["folds"])
    assert len(records) % n_folds == 0
    n_tiles = len(records) // n_folds
    evidence = [2]
    foreground = [1, 2]
    per_fold, per_fold_mean, weighting = [], [], []
    for f in range(n_folds):
        recs = records[f * n_tiles:(f + 1) * n_tiles]
        q = np.stack([_softmax64(h) for _, h in recs])                    # (tiles, classes)
        probs = [_softmax64(s) for s, _ in recs]                          # per tile (K, Pz, Py, Px)
        w = np.array([p[evidence].sum() for p in probs])
        w_evidence = w
        used = "lesion"
        if w.max() < 1.0:
            w = np.array([p[foreground].sum() for p in probs])
            used = "foreground"
            if w.max() < 1.0:
                w = None
                used = "uniform"
        fold_p = q.mean(0) if w is None else (w[:, None] * q).sum(0) / w.sum()
        per_fold.append(fold_p)
        per_fold_mean.append(q.mean(0))
        weighting.append({"weights_from": used,
                          "evidence_tile_weights": [float(v) for v in w_evidence],
                          "tile_weights": None if w is None else [float(v) for v in w],
                          "tile_probabilities": [[float(v) for v in row] for row in q]})
    p = np.mean(per_fold, 0)
    pm_ = np.mean(per_fold_mean, 0)
    out = {
        "policy": "lesion_weighted",
        "evidence_labels": evidence,
        "fallback_labels": foreground,
        "min_weight": 1.0,
        "class_names": SUBTYPES,
        "per_fold": [[float(v) for v in r] for r in per_fold],
        "probabilities": [float(v) for v in p],
        "predicted_class": int(np.argmax(p)),
        "mean_policy_probabilities": [float(v) for v in pm_],
        "mean_policy_predicted_class": int(np.argmax(pm_)),
        "tiles_per_fold": n_tiles,
        "per_fold_detail": weighting,
    }
    truth = case.get("subtype")
    log(f"   classification: {np.round(p, 4).tolist()} -> {SUBTYPES[out['predicted_class']]}"
        f" (weights from {[w['weights_from'] for w in weighting]}; scene subtype {truth})")
    return out


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------


def make_demo(log=print):
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    log("== demo")
    rng = np.random.default_rng(4242)
    shape = (40, 96, 96)
    spacing_xyz = (0.8, 0.8, 2.5)
    sp = tuple(reversed(spacing_xyz))
    fov = [n * s for n, s in zip(shape, sp)]
    # a hypodense (subtype0) lesion; sizes as in the training scenes, pancreas moved near the centre
    scene = random_scene(rng, fov, lesion=True, subtype=0, modality="ct")
    scene["pancreas"]["c"] = np.array([0.0, 4.0, -3.0])
    th = scene["pancreas"]["theta"]
    scene["lesion"]["c"] = scene["pancreas"]["c"] + np.array([0.0, 4.0 * np.sin(th), 4.0 * np.cos(th)])
    scene["vessel"]["c"] = (4.0, 17.0)
    data, labels = render(scene, shape, sp, rng)
    DEMO.mkdir(exist_ok=True)
    write_image(np.round(data[0]).astype(np.int16), DEMO / "ct.nii.gz", spacing_xyz, (-38.4, -38.4, -50.0),
                IDENTITY)
    dest = DEMO / "model"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(FIXTURES / "models" / "multitask_ct", dest)
    case = dict(step=0.5, mirror=True, folds=MODELS["multitask_ct"]["folds"])
    model_dir = WORK / "models" / "multitask_ct"
    pred = _make_predictor(nnUNetPredictor, model_dir, case)
    pm, cm, dsj = pred.plans_manager, pred.configuration_manager, pred.dataset_json
    pdata, _, props = cm.preprocessor_class(verbose=False).run_case([str(DEMO / "ct.nii.gz")], None, pm, cm, dsj)
    logits = pred.predict_logits_from_preprocessed_data(torch.from_numpy(pdata)).cpu()
    with tempfile.TemporaryDirectory() as tmp:
        export_prediction_from_logits(logits.clone(), props, cm, pm, dsj, os.path.join(tmp, "ct"), False)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(tmp, "ct.nii.gz")))
    cls = classification_reference(case, model_dir, pdata, logits, log)
    (WORK / "demo_classification.json").write_text(json.dumps(cls, indent=1) + "\n")
    counts = {int(k): int(v) for k, v in zip(*np.unique(seg, return_counts=True))}
    truth = {int(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
    dice = {}
    for k in (1, 2):
        den = (seg == k).sum() + (labels == k).sum()
        dice[k] = float(2 * ((seg == k) & (labels == k)).sum() / den) if den else float("nan")
    log(f"   demo ct {shape} spacing {spacing_xyz}: nnU-Net labels {counts}, synthetic truth {truth}, "
        f"Dice {dice}; class {SUBTYPES[cls['predicted_class']]} {np.round(cls['probabilities'], 4).tolist()}, "
        f"synthetic subtype {SUBTYPES[scene['lesion']['subtype']]}")
    return dict(counts=counts, truth=truth, dice=dice, classification=cls)


# --------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["all", "models", "export", "cases", "demo"], default="all",
                    help="what to (re)make; 'export' re-exports existing checkpoints only")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--cases", nargs="+", default=[c["id"] for c in CASES], choices=[c["id"] for c in CASES])
    ap.add_argument("--folds", nargs="+", default=None,
                    help="with --stage models: train only these folds, keep the other checkpoints")
    ap.add_argument("--iterations", type=int, default=400, help="training iterations per fold")
    ap.add_argument("--n-train", type=int, default=36, help="synthetic training volumes per model")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.stage in ("all", "models"):
        for m in args.models:
            make_model(m, args.iterations, args.n_train, args.folds)
    if args.stage == "export":
        for m in args.models:
            export_model(m)
    if args.stage in ("all", "cases"):
        for c in CASES:
            if c["id"] in args.cases:
                make_case(c, check_sequential=c["id"] == "aniso_int16")
    if args.stage in ("all", "demo"):
        make_demo()
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
