#!/usr/bin/env python3
"""Label maps resampled by nnU-Net itself, for tests/resample_seg.rs.

    .venv-nnunet/bin/python tools/make_resample_seg_fixtures.py

nnU-Net resamples the previous stage's segmentation of a cascade with
``resample_data_or_seg_to_shape(is_seg=True, order=1, order_z=0, force_separate_z=None)``
(the plans' resampling_fn_seg_kwargs) (batchgenerators'
``resize_segmentation``: per-label indicators, argmax, nearest-neighbour tie-break). Each case is a
seeded int16 label map with -1 (outside the nonzero mask), 0, 1, 2 and blocks that make exact ties
(even zoom factors), resampled in 3-D and with a separate thick axis. Writes
``tests/fixtures/resample_seg/<case>_{input,expected}.npy`` and ``cases.json`` (shapes, spacings).
"""
import json
from pathlib import Path

import numpy as np
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "resample_seg"


def label_map(rng, shape):
    seg = np.zeros(shape, np.int16)
    for value in (1, 2, 1, 2, 1):
        lo = [int(rng.integers(0, s - 2)) for s in shape]
        hi = [min(s, l + int(rng.integers(2, max(3, s // 2)))) for l, s in zip(lo, shape)]
        seg[tuple(slice(a, b) for a, b in zip(lo, hi))] = value
    seg[:, :2, :] = np.where(seg[:, :2, :] == 0, -1, seg[:, :2, :])   # outside the nonzero mask
    return seg


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    cases = [
        # name, shape, new shape, current spacing, new spacing (separate z when anisotropy > 3)
        ("upsample_3d", (6, 10, 12), (9, 20, 24), (1.5, 1.0, 1.0), (1.0, 0.5, 0.5)),
        ("downsample_3d", (12, 16, 14), (8, 9, 10), (1.0, 0.8, 0.8), (1.5, 1.42, 1.12)),
        ("separate_z", (5, 18, 20), (7, 27, 31), (4.0, 1.0, 1.0), (2.9, 0.667, 0.645)),
        ("even_factor_ties", (4, 8, 8), (4, 16, 16), (4.0, 1.0, 1.0), (4.0, 0.5, 0.5)),
    ]
    meta = []
    for name, shape, new_shape, current, new in cases:
        seg = label_map(rng, shape)
        out = resample_data_or_seg_to_shape(seg[None], new_shape, current, new, is_seg=True, order=1, order_z=0,
                                            force_separate_z=None)[0]
        np.save(OUT / f"{name}_input.npy", seg)
        np.save(OUT / f"{name}_expected.npy", out.astype(np.int16))
        meta.append({"name": name, "shape": shape, "new_shape": new_shape, "current_spacing": current,
                     "new_spacing": new, "labels": sorted(int(v) for v in np.unique(out))})
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
