"""The golden values of two unit tests, computed with the code nnU-Net runs:

* src/resample.rs `cubic_resize_matches_skimage_golden_values` and
  `linear_resize_matches_skimage_golden_values`: skimage.transform.resize of a 3x4 float64 image
  to 5x6 (order 3 and 1, mode 'edge', anti_aliasing False, as nnU-Net's resample_data_or_seg
  calls it), cast to float32; and `nearest_z_tables_match_the_golden_values`: the source slice
  of each output slice of scipy.ndimage.map_coordinates(order=0, mode='nearest') on nnU-Net's
  separate-z coordinate map.
* src/window/gaussian.rs `matches_the_golden_values_for_the_pancreas_patch`: nnunetv2's
  compute_gaussian for the 64x128x192 patch (sigma = patch / 8, value_scaling_factor 10,
  float16), the bits of a few voxels, and how many voxels were zero before the clamp.

Prints the values, then checks them against the tables in the two Rust files (exit status 1 on
any difference). Run with the nnU-Net environment:
    .venv-nnunet/bin/python tools/make_unit_golden_values.py
"""

import os
import re
import sys

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, map_coordinates
from skimage.transform import resize
from nnunetv2.inference.sliding_window_prediction import compute_gaussian

IMAGE = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, -1.0, 0.0, 2.0, 9.0]).reshape(3, 4)


def resized(order):
    out = resize(IMAGE, (5, 6), order=order, mode="edge", anti_aliasing=False)
    return [float(np.float32(v)) for v in out.ravel()]


def nearest_z(n, m):
    """Source slice of each of m output slices, from map_coordinates(order=0) on an index ramp."""
    ramp = np.arange(n, dtype=np.float64).reshape(n, 1)
    coordinates = (np.arange(m) + 0.5) * (n / m) - 0.5
    grid = np.stack([coordinates.reshape(m, 1), np.zeros((m, 1))])
    return [int(v) for v in map_coordinates(ramp, grid, order=0, mode="nearest").ravel()]


def gaussian():
    patch = (64, 128, 192)
    smap = compute_gaussian(patch, 1.0 / 8, 10, torch.float16, torch.device("cpu"))
    bits = smap.numpy().view(np.uint16)
    points = [(32, 64, 96), (31, 63, 95), (16, 32, 48), (32, 64, 0), (0, 64, 96), (0, 0, 0), (63, 127, 191)]
    # The map before nnU-Net replaces its zeros: the same computation up to the float16 cast.
    tmp = np.zeros(patch)
    tmp[tuple(i // 2 for i in patch)] = 1
    unclamped = gaussian_filter(tmp, [i / 8 for i in patch], 0, mode="constant", cval=0)
    unclamped /= np.max(unclamped) / 10
    zeros = int((torch.from_numpy(unclamped).to(torch.float16) == 0).sum())
    return {p: f"0x{int(bits[p]):04x}" for p in points}, zeros


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_body(path, name):
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    start = text.index(f"fn {name}()")
    return text[start : text.index("\n    }\n", start)]


def numbers(text):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def check():
    """Differences between what nnU-Net's code computes and what the Rust tests hold."""
    problems = []
    for order, name in [(3, "cubic_resize_matches_skimage_golden_values"), (1, "linear_resize_matches_skimage_golden_values")]:
        body = test_body("src/resample.rs", name)
        table = body[body.index("= [") + 3 : body.index("];")]
        held = [np.float32(v) for v in numbers(table)]
        if held != [np.float32(v) for v in resized(order)]:
            problems.append(f"src/resample.rs {name}")
    body = test_body("src/resample.rs", "nearest_z_tables_match_the_golden_values")
    up = [int(v) for v in numbers(body.split("assert_eq!(nearest_z_indices(95, 119)[..14], ")[1].split("]")[0])]
    down_head = [int(v) for v in numbers(body.split("assert_eq!(down[..12], ")[1].split("]")[0])]
    down_tail = [int(v) for v in numbers(body.split("assert_eq!(down[90..], ")[1].split("]")[0])]
    down = nearest_z(119, 95)
    if up != nearest_z(95, 119)[:14] or down_head != down[:12] or down_tail != down[90:] or nearest_z(4, 2) != [1, 3]:
        problems.append("src/resample.rs nearest_z_tables_match_the_golden_values")
    body = test_body("src/window/gaussian.rs", "matches_the_golden_values_for_the_pancreas_patch")
    bits, zeros = gaussian()
    for z, y, x, value in re.findall(r"at\((\d+), (\d+), (\d+)\), (0x[0-9a-f]{4})", body):
        if bits[(int(z), int(y), int(x))] != value:
            problems.append(f"src/window/gaussian.rs at({z}, {y}, {x}) holds {value}, nnU-Net gives {bits[(int(z), int(y), int(x))]}")
    if f"assert_eq!(clamped, {zeros});" not in body:
        problems.append(f"src/window/gaussian.rs: {zeros} zeros before the clamp")
    return problems


def main():
    print("src/resample.rs")
    print("  cubic  (order 3):", resized(3))
    print("  linear (order 1):", resized(1))
    print("  nearest_z_indices(95, 119)[..14]:", nearest_z(95, 119)[:14])
    down = nearest_z(119, 95)
    print("  nearest_z_indices(119, 95)[..12]:", down[:12], "[90..]:", down[90:])
    print("  nearest_z_indices(4, 2):", nearest_z(4, 2))
    print("src/window/gaussian.rs")
    bits, zeros = gaussian()
    for (z, y, x), b in bits.items():
        print(f"  at({z}, {y}, {x}) = {b}")
    print("  zeros before the clamp:", zeros)
    problems = check()
    for problem in problems:
        print("DIFFERS:", problem)
    if problems:
        sys.exit(1)
    print("every value the tests hold is reproduced")


if __name__ == "__main__":
    main()
