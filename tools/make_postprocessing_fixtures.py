#!/usr/bin/env python3
"""Writes the fixtures of tests/postprocess.rs: label maps, postprocessing.json files as nnU-Net
writes them, and what nnU-Net's own postprocessing makes of each map.

Run from the repository root with the tooling venv (tools/install-nnunet-venv.sh .venv-nnunet)::

    .venv-nnunet/bin/python tools/make_postprocessing_fixtures.py

Output, under tests/fixtures/postprocessing/ (label maps are uint8 .npy arrays of shape (z, y, x)):

    CASE/input.npy                        the segmentation before postprocessing
    CASE/VARIANT/postprocessing.json      a postprocessing.json as determine_postprocessing writes it
    CASE/VARIANT/expected.npy             nnU-Net's apply_postprocessing of input.npy with it
    manifest.json                         every (case, variant), its label count and changed voxels

Each postprocessing.json is built the way ``determine_postprocessing`` builds it: the steps are a
selection of the candidates it tries (all foreground labels at once, then each label or region in
dataset.json order), the kwargs are ``label_manager.foreground_labels`` /
``label_manager.foreground_regions`` entries (numpy integers and tuples, as in the pickle), the
metric sections have the same keys (``label_or_region_to_key``), and the dict goes through
``recursive_fix_for_json_export`` and ``save_json``. Which steps a real run keeps depends on Dice
scores; the variants cover the selections that matter (none, one, several, all).

The expected outputs come from ``apply_postprocessing`` with
``remove_all_but_largest_component_from_segmentation`` and the kwargs as the pickle holds them
(before the JSON conversion); the script also checks that the kwargs read back from the JSON give
the same result, so the JSON alone determines the answer.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key
from nnunetv2.postprocessing.remove_connected_components import (
    apply_postprocessing,
    remove_all_but_largest_component_from_segmentation,
)
from nnunetv2.utilities.json_export import recursive_fix_for_json_export
from nnunetv2.utilities.label_handling.label_handling import LabelManager

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "postprocessing"
KEEP_LARGEST = remove_all_but_largest_component_from_segmentation


def random_boxes(rng, shape, labels, boxes_per_label, max_side):
    """Boxes of random size and place per label, later labels painted over earlier ones, plus a
    few isolated voxels per label: several components per label, some of them touching."""
    seg = np.zeros(shape, np.uint8)
    for label in labels:
        for _ in range(boxes_per_label):
            side = rng.integers(1, max_side + 1, size=3)
            corner = [rng.integers(0, n - s + 1) for n, s in zip(shape, side)]
            seg[tuple(slice(c, c + s) for c, s in zip(corner, side))] = label
        for _ in range(3):
            seg[tuple(rng.integers(0, n) for n in shape)] = label
    return seg


def box(seg, corner, side, label):
    seg[tuple(slice(c, c + s) for c, s in zip(corner, side))] = label


def tie_case():
    """Label 1: two 3x3x3 cubes (27 voxels each, both largest) and a 2x2x2 cube. Label 2: two
    2x3x4 boxes (24 each) and a single voxel. Nothing touches, so the union step has the same tie."""
    seg = np.zeros((12, 16, 20), np.uint8)
    box(seg, (1, 1, 1), (3, 3, 3), 1)
    box(seg, (8, 11, 15), (3, 3, 3), 1)
    box(seg, (1, 12, 2), (2, 2, 2), 1)
    box(seg, (6, 2, 12), (2, 3, 4), 2)
    box(seg, (9, 3, 3), (2, 3, 4), 2)
    seg[11, 15, 19] = 2
    return seg


def diagonal_case():
    """Label 1: two 2x2x2 cubes that share one corner only (one 16-voxel component with full
    connectivity, two of 8 with face connectivity) and a separate 3x2x2 block (12). Label 2: two
    2x2x3 blocks that share one edge only (24 together) and a separate 2x2x4 block (16)."""
    seg = np.zeros((12, 14, 16), np.uint8)
    box(seg, (2, 2, 2), (2, 2, 2), 1)
    box(seg, (4, 4, 4), (2, 2, 2), 1)
    box(seg, (8, 9, 10), (3, 2, 2), 1)
    box(seg, (1, 9, 1), (2, 2, 3), 2)
    box(seg, (3, 11, 1), (2, 2, 3), 2)
    box(seg, (8, 2, 11), (2, 2, 4), 2)
    return seg


def empty_label_case(rng):
    """Labels 1 and 2 in random boxes; label 3 of dataset.json has no voxel at all."""
    return random_boxes(rng, (12, 16, 20), [1, 2], boxes_per_label=4, max_side=5)


def region_case(rng):
    """A BraTS-like map: nested label values 1 (outer), 2 (core), 3 (enhancing) in several blobs,
    so the regions (1, 2, 3), (2, 3) and (3,) each have several components."""
    shape = (18, 22, 26)
    seg = np.zeros(shape, np.uint8)
    for _ in range(4):
        outer = rng.integers(3, 7, size=3)
        corner = [rng.integers(0, n - s + 1) for n, s in zip(shape, outer)]
        box(seg, corner, outer, 1)
        core = np.maximum(outer - 2, 1)
        box(seg, [c + 1 for c in corner], core, 2)
        if rng.random() < 0.75:
            box(seg, [c + 1 for c in corner], np.maximum(core - 1, 1), 3)
    for label in (1, 2, 3):
        for _ in range(2):
            seg[tuple(rng.integers(0, n) for n in shape)] = label
    return seg


def metrics_section(keys, rng):
    """The shape of a summary's 'foreground_mean' and 'mean' sections (values are made up)."""
    def one():
        return {"Dice": np.float64(rng.random()), "IoU": np.float64(rng.random()), "FP": np.float64(3.0),
                "FN": np.float64(2.0), "TP": np.float64(40.0), "TN": np.float64(900.0),
                "n_pred": np.float64(43.0), "n_ref": np.float64(42.0)}
    return {"foreground_mean": one(), "mean": {k: one() for k in keys}}


def postprocessing_dict(label_manager, steps, rng):
    """What determine_postprocessing saves, for the chosen steps. A step is "all" (every
    foreground label at once) or the index of a label / region in dataset.json order."""
    labels_or_regions = (label_manager.foreground_regions if label_manager.has_regions
                         else label_manager.foreground_labels)
    pp_fns, pp_fn_kwargs = [], []
    for step in steps:
        pp_fns.append(KEEP_LARGEST)
        if step == "all":
            pp_fn_kwargs.append({"labels_or_regions": label_manager.foreground_labels})
        else:
            pp_fn_kwargs.append({"labels_or_regions": labels_or_regions[step]})
    pickled_kwargs = copy.deepcopy(pp_fn_kwargs)
    tmp = {
        "input_folder": metrics_section(labels_or_regions, rng),
        "postprocessed": metrics_section(labels_or_regions, rng),
        "postprocessing_fns": [i.__name__ for i in pp_fns],
        "postprocessing_kwargs": pp_fn_kwargs,
    }
    tmp["input_folder"]["mean"] = {label_or_region_to_key(k): v for k, v in tmp["input_folder"]["mean"].items()}
    tmp["postprocessed"]["mean"] = {label_or_region_to_key(k): v for k, v in tmp["postprocessed"]["mean"].items()}
    recursive_fix_for_json_export(tmp)
    return tmp, pp_fns, pickled_kwargs


def save_npy(path, array):
    assert array.dtype == np.uint8
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():  # everything but the hand-written README
        if old.is_dir():
            shutil.rmtree(old)
        elif old.name != "README.md":
            old.unlink()
    rng = np.random.default_rng(20250611)

    plain = {"background": 0, "liver": 1, "vessel": 2, "tumour": 3}
    brats_like = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]}
    brats_scalar = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}
    # (case, map, labels of dataset.json, regions_class_order, {variant: steps})
    cases = [
        ("random", random_boxes(rng, (18, 22, 26), [1, 2, 3], boxes_per_label=5, max_side=7), plain, None,
         {"all_steps": ["all", 0, 1, 2], "foreground_only": ["all"], "labels_2_then_0": [2, 0], "none": []}),
        ("tie", tie_case(), {"background": 0, "a": 1, "b": 2}, None,
         {"all_steps": ["all", 0, 1], "label_2": [1]}),
        ("diagonal", diagonal_case(), {"background": 0, "a": 1, "b": 2}, None,
         {"label_1": [0], "label_2": [1], "foreground_only": ["all"]}),
        ("empty_label", empty_label_case(rng), plain, None,
         {"all_steps": ["all", 0, 1, 2], "label_3": [2]}),
        ("regions", region_case(rng), brats_like, [1, 2, 3],
         {"all_steps": ["all", 0, 1, 2], "core_then_enhancing": [1, 2]}),
        ("regions_scalar", None, brats_scalar, [1, 2, 3],
         {"whole_then_enhancing": [0, 2]}),
    ]
    inputs = {}
    manifest = {
        "made_by": "tools/make_postprocessing_fixtures.py",
        "versions": {p: version(p) for p in ("nnunetv2", "acvl_utils", "scikit-image", "numpy")},
        "python": sys.version.split()[0],
        "layout": "uint8 arrays of shape (z, y, x); dims (x, y, z) = reversed shape",
        "cases": [],
    }
    for name, seg, label_dict, region_order, variants in cases:
        if seg is None:  # the same map under the other spelling of a one-label region
            seg, source = inputs["regions"], "regions"
        else:
            source = name
            inputs[name] = seg
            (OUT / name).mkdir()
            save_npy(OUT / name / "input.npy", seg)
        label_manager = LabelManager(label_dict, region_order)
        label_count = int(max(label_manager.all_labels)) + 1
        for variant, steps in variants.items():
            pp_json, pp_fns, pickled_kwargs = postprocessing_dict(label_manager, steps, rng)
            folder = OUT / name / variant
            folder.mkdir(parents=True)
            save_json(pp_json, str(folder / "postprocessing.json"))

            expected = apply_postprocessing(seg, pp_fns, pickled_kwargs)
            from_json = load_json(str(folder / "postprocessing.json"))
            again = apply_postprocessing(seg, [KEEP_LARGEST] * len(from_json["postprocessing_fns"]),
                                         from_json["postprocessing_kwargs"])
            assert np.array_equal(expected, again), f"{name}/{variant}: JSON kwargs act differently"
            assert expected.dtype == np.uint8
            save_npy(folder / "expected.npy", expected)
            manifest["cases"].append({
                "case": f"{name}/{variant}",
                "input": f"{source}/input.npy",
                "postprocessing": f"{name}/{variant}/postprocessing.json",
                "expected": f"{name}/{variant}/expected.npy",
                "label_count": label_count,
                "changed_voxels": int((expected != seg).sum()),
            })
    with open(OUT / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    for entry in manifest["cases"]:
        print(f"{entry['case']:32s} changed voxels {entry['changed_voxels']}")
    print(f"{len(manifest['cases'])} cases, {total / 1024:.0f} KiB in {os.path.relpath(OUT, REPO)}")


if __name__ == "__main__":
    main()
