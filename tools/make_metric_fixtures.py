#!/usr/bin/env python3
"""Writes the fixtures of tests/metrics.rs: small predicted/reference label pairs and the metrics
an independent implementation computes on them.

The reference implementation is DeepMind's ``surface-distance`` package (PyPI
``surface-distance`` 0.1, the code of github.com/google-deepmind/surface-distance):
``compute_surface_distances``, ``compute_dice_coefficient``, ``compute_robust_hausdorff``,
``compute_average_surface_distance`` and ``compute_surface_dice_at_tolerance``, plus its surfel
area lookup table (``create_table_neighbour_code_to_surface_area``).

Output, under tests/fixtures/metrics/:
  pred/CASE.nii.gz, ref/CASE.nii.gz   label maps (uint8), the same geometry per pair
  pred/CASE.json                      a case-level classification as ``nnunet-rt predict`` writes it
  classes.csv                         the true class of each case (names and integers mixed)
  bad/                                inputs that must be rejected (float labels, other spacing/dims)
  expected.json                       the metrics, per case and region, and surfel area tables

Usage (numpy < 2 because the package still uses np.Inf):
  python3 -m venv .venv-metrics
  .venv-metrics/bin/pip install "numpy<2" scipy SimpleITK surface-distance absl-py
  .venv-metrics/bin/python tools/make_metric_fixtures.py
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
import surface_distance
from surface_distance import lookup_tables

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "metrics")
REGIONS = {"whole": [1, 2], "inner": [2]}
TOLERANCES_MM = [1.0, 2.0]
CLASS_NAMES = ["subtype1", "subtype2", "subtype3"]


def grid(shape_zyx):
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape_zyx], indexing="ij")
    return z, y, x


def ellipsoid(shape_zyx, centre_zyx, radii_zyx):
    z, y, x = grid(shape_zyx)
    c, r = centre_zyx, radii_zyx
    return ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1.0


def blob(rng, shape_zyx, sigma, level):
    field = ndimage.gaussian_filter(rng.standard_normal(shape_zyx), sigma)
    return field > level * field.std()


def labels(whole, inner):
    out = np.zeros(whole.shape, np.uint8)
    out[whole] = 1
    out[whole & inner] = 2
    return out


def cases():
    rng = np.random.default_rng(20240501)
    out = {}

    shape = (24, 28, 30)
    ref = labels(ellipsoid(shape, (12, 14, 15), (8, 8, 8)), ellipsoid(shape, (12, 14, 15), (3, 3, 3)))
    pred = labels(ellipsoid(shape, (12, 15, 17), (8, 8, 8)), ellipsoid(shape, (12, 14, 16), (3, 3, 3)))
    out["sphere_shift"] = (pred, ref, (1.0, 1.0, 1.0))

    shape = (12, 40, 36)
    ref = labels(ellipsoid(shape, (6, 20, 18), (3, 12, 11)), ellipsoid(shape, (6, 22, 16), (1.5, 4, 4)))
    pred = labels(ellipsoid(shape, (6.4, 19, 19), (3.3, 11, 12)), ellipsoid(shape, (6, 21, 18), (1.6, 5, 3)))
    out["ellipsoid_aniso"] = (pred, ref, (0.7, 0.8, 2.5))

    for i, spacing in enumerate([(1.0, 1.0, 1.0), (0.9, 0.6, 1.8), (1.5, 0.75, 3.0)]):
        shape = (20, 30, 26)
        whole = blob(rng, shape, 3.0, 0.3)
        inner = blob(rng, shape, 2.0, 0.8)
        noise = blob(rng, shape, 1.5, 1.2)
        ref = labels(whole, inner)
        pred = labels((whole ^ noise) | np.roll(whole, 1, axis=2) & whole, np.roll(inner, (1, -1), axis=(0, 1)))
        out[f"random_blobs_{i + 1}"] = (pred, ref, spacing)

    shape = (16, 20, 22)
    ref = np.zeros(shape, np.uint8)
    ref[4:12, 5:15, 6:16] = 1
    ref[6:9, 8:11, 9:12] = 2
    pred = np.zeros(shape, np.uint8)
    pred[5:12, 6:16, 6:18] = 1
    pred[6:10, 8:11, 10:13] = 2
    out["cube_offset"] = (pred, ref, (1.2, 0.9, 2.0))

    shape = (14, 18, 20)
    ref = np.zeros(shape, np.uint8)
    ref[:6, 0:9, 0:12] = 1
    ref[:3, 0:4, 0:5] = 2
    pred = np.zeros(shape, np.uint8)
    pred[:7, 0:10, 0:11] = 1
    pred[:2, 0:4, 0:6] = 2
    ref[10:, 12:, 15:] = 1  # a second component in the far corner of the volume
    pred[11:, 13:, 16:] = 1
    out["border_touching"] = (pred, ref, (0.8, 0.8, 1.5))

    shape = (9, 10, 11)
    ref = np.zeros(shape, np.uint8)
    ref[4, 5, 5] = 1
    pred = np.zeros(shape, np.uint8)
    pred[5, 5, 7] = 1
    out["single_voxel"] = (pred, ref, (1.0, 0.5, 2.0))

    shape = (18, 22, 20)
    whole = ellipsoid(shape, (9, 11, 10), (6, 8, 7))
    ref = labels(whole, ellipsoid(shape, (9, 12, 9), (2, 3, 3)))
    pred = labels(ellipsoid(shape, (9, 11, 11), (6, 7, 7)), np.zeros(shape, bool))
    out["missed_inner"] = (pred, ref, (1.0, 1.0, 1.0))

    shape = (10, 12, 12)
    ref = labels(ellipsoid(shape, (5, 6, 6), (3, 4, 4)), np.zeros(shape, bool))
    pred = np.zeros(shape, np.uint8)
    out["empty_pred"] = (pred, ref, (1.0, 1.0, 1.5))
    return out


def write(path, array_zyx, spacing_xyz, dtype=None):
    image = sitk.GetImageFromArray(array_zyx if dtype is None else array_zyx.astype(dtype))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin((-10.0, 20.0, 5.0))
    sitk.WriteImage(image, path, useCompression=True)
    # The spacing as stored (float32 pixdim) is the spacing every reader sees.
    return sitk.ReadImage(path).GetSpacing()


def reference_metrics(pred, ref, spacing_zyx):
    out = {}
    for name, labels_of_region in REGIONS.items():
        p = np.isin(pred, labels_of_region)
        r = np.isin(ref, labels_of_region)
        entry = {"pred_voxels": int(p.sum()), "ref_voxels": int(r.sum())}
        dice = surface_distance.compute_dice_coefficient(r, p)
        entry["dice"] = None if np.isnan(dice) else float(dice)
        if p.any() and r.any():
            d = surface_distance.compute_surface_distances(r, p, spacing_zyx)
            g2p, p2g = surface_distance.compute_average_surface_distance(d)
            area_r, area_p = float(np.sum(d["surfel_areas_gt"])), float(np.sum(d["surfel_areas_pred"]))
            entry.update(
                hd95=float(surface_distance.compute_robust_hausdorff(d, 95)),
                msd_ref_to_pred=float(g2p),
                msd_pred_to_ref=float(p2g),
                # Pooled over the surfels of both masks (the crate's MSD).
                msd=float((g2p * area_r + p2g * area_p) / (area_r + area_p)),
                msd_mean_of_directed=float((g2p + p2g) / 2),
                nsd={str(t): float(surface_distance.compute_surface_dice_at_tolerance(d, t)) for t in TOLERANCES_MM},
                ref_surface_mm2=area_r,
                pred_surface_mm2=area_p,
            )
        out[name] = entry
    return out


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    for sub in ("pred", "ref", "bad"):
        os.makedirs(os.path.join(ROOT, sub))
    expected = {
        "generator": "tools/make_metric_fixtures.py",
        "implementation": "surface-distance (DeepMind) %s" % getattr(surface_distance, "__version__", "0.1"),
        "regions": "whole=1,2;inner=2",
        "nsd_tolerances_mm": TOLERANCES_MM,
        "hausdorff_percent": 95,
        "cases": {},
        "surfel_area_tables": [],
    }
    rng = np.random.default_rng(7)
    truth_rows = []
    for case, (pred, ref, spacing_xyz) in sorted(cases().items()):
        stored = write(os.path.join(ROOT, "ref", case + ".nii.gz"), ref, spacing_xyz)
        stored_pred = write(os.path.join(ROOT, "pred", case + ".nii.gz"), pred, spacing_xyz)
        assert stored == stored_pred
        spacing_zyx = tuple(reversed(stored))
        expected["cases"][case] = {
            "dims_xyz": list(reversed(ref.shape)),
            "spacing_xyz": list(stored),
            "regions": reference_metrics(pred, ref, spacing_zyx),
        }
        true_class = int(rng.integers(3))
        predicted = true_class if rng.random() < 0.6 else int(rng.integers(3))
        probabilities = np.full(3, 0.1)
        probabilities[predicted] = 0.8
        with open(os.path.join(ROOT, "pred", case + ".json"), "w") as f:
            json.dump({"case": case, "classification": {
                "predicted_class": predicted,
                "predicted_class_name": CLASS_NAMES[predicted],
                "probabilities": probabilities.tolist(),
                "class_names": CLASS_NAMES,
            }}, f, indent=2)
        # Alternate names and integers, as both are accepted.
        truth_rows.append((case, CLASS_NAMES[true_class] if len(truth_rows) % 2 == 0 else str(true_class)))
        expected["cases"][case]["true_class"] = true_class
        expected["cases"][case]["predicted_class"] = predicted
    with open(os.path.join(ROOT, "classes.csv"), "w") as f:
        f.write("case,class\n")
        for case, cls in truth_rows:
            f.write(f"{case},{cls}\n")

    for spacing_zyx in [(1.0, 1.0, 1.0), (2.5, 0.8, 0.7), (0.5, 3.0, 1.2)]:
        table = lookup_tables.create_table_neighbour_code_to_surface_area(spacing_zyx)
        expected["surfel_area_tables"].append({"spacing_zyx": list(spacing_zyx), "areas_by_code": table.tolist()})

    # Inputs that must be rejected, next to the reference of "cube_offset" (dims 22x20x16).
    _, ref, spacing_xyz = cases()["cube_offset"]
    fractional = ref.astype(np.float32)
    fractional[8, 10, 11] = 1.5
    write(os.path.join(ROOT, "bad", "fractional_labels.nii.gz"), fractional, spacing_xyz)
    write(os.path.join(ROOT, "bad", "other_spacing.nii.gz"), ref, (spacing_xyz[0], spacing_xyz[1], spacing_xyz[2] * 1.01))
    write(os.path.join(ROOT, "bad", "other_dims.nii.gz"), ref[:, :, :-1], spacing_xyz)

    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(ROOT) for n in names)
    print(f"wrote {len(expected['cases'])} cases to {os.path.normpath(ROOT)} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    sys.exit(main())
