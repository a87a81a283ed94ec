"""Crafted NIfTI-1 headers and the geometry SimpleITK reads from each: tests/fixtures/geometry/.

Each file is a 2x2x2 uint8 image whose qform and sform (codes, quaternion, offsets, matrix)
exercise one branch of ITK's choice between the two (itkNiftiImageIO.cxx,
SetImageIOOrientationFromNIfTI). geometry.json records what SimpleITK returns for each file:
spacing, origin and direction, or the error it raises. tests/geometry.rs reads the same files
with nnunet-rt and asserts the same answer.

Run with the nnU-Net environment (SimpleITK; the headers themselves are written with struct):
    .venv-nnunet/bin/python tools/make_geometry_fixtures.py
"""

import json
import math
import os
import struct

import SimpleITK as sitk

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "geometry")
SPACING = (0.8, 0.9, 2.5)


def header(qform_code=0, sform_code=0, quatern=(0, 0, 0), qoffset=(0, 0, 0), srows=None, qfac=1.0, spacing=SPACING):
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, 2, 2, 2, 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, 2, 8)  # uint8
    struct.pack_into("<8f", h, 76, qfac, *spacing, 0, 0, 0, 0)
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<f", h, 112, 1.0)  # scl_slope
    struct.pack_into("<hh", h, 252, qform_code, sform_code)
    struct.pack_into("<6f", h, 256, *quatern, *qoffset)
    if srows is not None:
        struct.pack_into("<12f", h, 280, *[v for row in srows for v in row])
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0" + bytes(range(8))


def rotation(axis, degrees):
    """Quaternion (b, c, d) and 3x3 matrix of a rotation about a unit axis."""
    n = math.sqrt(sum(a * a for a in axis))
    x, y, z = (a / n for a in axis)
    half = math.radians(degrees) / 2
    a, s = math.cos(half), math.sin(half)
    b, c, d = x * s, y * s, z * s
    r = [
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ]
    return (b, c, d), r


def sform_of(r, offset, spacing=SPACING, qfac=1.0):
    """srow_x/y/z of rotation r scaled by spacing (the last column by qfac), then the offset."""
    scale = [spacing[0], spacing[1], spacing[2] * qfac]
    return [[r[i][j] * scale[j] for j in range(3)] + [offset[i]] for i in range(3)]


def cases():
    q30, r30 = rotation((1, 2, 3), 30)
    q70, r70 = rotation((-2, 0.5, 1), 70)
    off = (12.5, -40.25, 7.0)
    off2 = (-3.0, 8.0, 100.5)
    shear = sform_of(r30, off)
    shear[0][1] += 0.3
    yield "no_transform", header()
    yield "qform_only", header(qform_code=1, quatern=q30, qoffset=off)
    yield "qform_negative_qfac", header(qform_code=1, quatern=q30, qoffset=off, qfac=-1.0)
    yield "qform_180_degrees", header(qform_code=1, quatern=(1.0, 0.0, 0.0), qoffset=off)
    yield "sform_only", header(sform_code=2, srows=sform_of(r70, off2))
    yield "sform_scanner_anat_wins", header(qform_code=1, quatern=q30, qoffset=off, sform_code=1, srows=sform_of(r70, off2))
    yield "sform_aligned_loses", header(qform_code=1, quatern=q30, qoffset=off, sform_code=2, srows=sform_of(r70, off2))
    yield "sform_aligned_same", header(qform_code=1, quatern=q30, qoffset=off, sform_code=2, srows=sform_of(r30, off))
    yield "sform_sheared_qform_wins", header(qform_code=1, quatern=q30, qoffset=off, sform_code=1, srows=shear)
    yield "sform_sheared_alone", header(sform_code=1, srows=shear)
    yield "sform_flipped_axis", header(sform_code=1, srows=sform_of(r70, off2, qfac=-1.0))


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    for name, data in cases():
        path = os.path.join(OUT, name + ".nii")
        with open(path, "wb") as f:
            f.write(data)
        try:
            image = sitk.ReadImage(path)
            expected[name] = {
                "spacing": list(image.GetSpacing()),
                "origin": list(image.GetOrigin()),
                "direction": list(image.GetDirection()),
            }
        except RuntimeError as e:
            expected[name] = {"error": str(e).strip().splitlines()[-1]}
    expected["_generated_by"] = f"tools/make_geometry_fixtures.py with SimpleITK {sitk.__version__} (ITK {sitk.Version.ITKVersionString()})"
    with open(os.path.join(OUT, "geometry.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    for name, value in expected.items():
        print(name, value)


if __name__ == "__main__":
    main()
