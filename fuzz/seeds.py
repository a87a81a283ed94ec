"""Writes the committed seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the test
fixtures and a few crafted inputs. Standard library only: python3 fuzz/seeds.py"""

import gzip
import json
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def nifti(dims, datatype, bitpix, voxels, sform=None, qform=None, pixdim0=1.0, slope=0.0, inter=0.0, endian="<"):
    """A single-file NIfTI-1 (n+1) image: 348-byte header, 4-byte extender, data."""
    h = bytearray(348)
    struct.pack_into(endian + "i", h, 0, 348)
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into(endian + "8h", h, 40, *dim)
    struct.pack_into(endian + "hh", h, 70, datatype, bitpix)
    struct.pack_into(endian + "8f", h, 76, pixdim0, 0.8, 0.9, 2.5, 0, 0, 0, 0)
    struct.pack_into(endian + "f", h, 108, 352.0)
    struct.pack_into(endian + "ff", h, 112, slope, inter)
    if qform is not None:
        struct.pack_into(endian + "h", h, 252, 1)
        struct.pack_into(endian + "6f", h, 256, *qform)
    if sform is not None:
        struct.pack_into(endian + "h", h, 254, 2)
        struct.pack_into(endian + "12f", h, 280, *sform)
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0" + voxels


def npy(descr, shape, payload, version=1):
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    preamble = 10 if version == 1 else 12
    header += " " * ((64 - (preamble + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode() + payload


def bundle_body(files):
    """A model bundle without its trailing CRC-32: magic, version, entry table, data."""
    out = b"NNRTBNDL" + struct.pack("<II", 1, len(files))
    for name, data in files:
        out += struct.pack("<I", len(name.encode())) + name.encode() + struct.pack("<Q", len(data))
    return out + b"".join(data for _, data in files)


def minified(path):
    with open(path) as f:
        return json.dumps(json.load(f), separators=(",", ":")).encode()


def main():
    # NIfTI: each supported type, scaling, qform only, sform + qform, big-endian, 4-D channels, gzip.
    sform = [-0.8, 0, 0, 10, 0, -0.9, 0, 20, 0, 0, 2.5, -5]
    qform = [0.0, 0.0, 1.0, 10.0, 20.0, -5.0]
    write("nifti", "u8_sform.nii", nifti([2, 2, 2], 2, 8, bytes(range(8)), sform=sform))
    write("nifti", "i16_qform.nii", nifti([3, 2, 1], 4, 16, struct.pack("<6h", -3, -2, -1, 0, 1, 2), qform=qform))
    write("nifti", "f32_both.nii", nifti([2, 1, 2], 16, 32, struct.pack("<4f", 0.5, 1, -2, 3), sform=sform, qform=qform))
    write("nifti", "f64_scaled.nii", nifti([2, 1, 1], 64, 64, struct.pack("<2d", 1, 2), slope=2.0, inter=-1.0))
    write("nifti", "u16_be.nii", nifti([2, 2, 1], 512, 16, struct.pack(">4H", 1, 2, 3, 4), endian=">"))
    write("nifti", "i32_4d.nii", nifti([1, 2, 1, 2], 8, 32, struct.pack("<4i", 1, 2, 3, 4), pixdim0=-1.0, qform=qform))
    write("nifti", "u8_sform.nii.gz", gzip.compress(nifti([2, 2, 2], 2, 8, bytes(range(8)), sform=sform), mtime=0))
    for case in ["small", "oblique"]:
        with open(os.path.join(FIXTURES, "cases", case, "reference", "seg.nii.gz"), "rb") as f:
            write("nifti", f"{case}_seg.nii.gz", f.read())

    # npy: every supported element type, both header versions.
    write("npy", "f4.npy", npy("<f4", [2, 3], struct.pack("<6f", 1, 2, 3, 4, 5, 6)))
    write("npy", "f2.npy", npy("<f2", [3], struct.pack("<3e", 1, -2, 0.5)))
    write("npy", "f8.npy", npy("<f8", [1, 1, 2], struct.pack("<2d", 1, 2)))
    write("npy", "u1.npy", npy("|u1", [4], bytes([0, 1, 2, 255])))
    write("npy", "i1.npy", npy("|i1", [2, 2], bytes([0, 1, 0x80, 0x7F])))
    write("npy", "i2.npy", npy("<i2", [2], struct.pack("<2h", -1, 2)))
    write("npy", "u2.npy", npy("<u2", [2], struct.pack("<2H", 1, 65535), version=2))
    write("npy", "i4.npy", npy("<i4", [], struct.pack("<i", 7), version=3))

    # Model folders: plans.json, dataset.json, the first fold's export metadata, 0xFF between.
    models = os.path.join(FIXTURES, "models")
    for model in sorted(os.listdir(models)):
        folder = os.path.join(models, model)
        fold = sorted(d for d in os.listdir(folder) if d.startswith("fold_"))[0]
        parts = [
            minified(os.path.join(folder, "plans.json")),
            minified(os.path.join(folder, "dataset.json")),
            minified(os.path.join(folder, fold, "nnunet_rt_export.json")),
        ]
        write("model_folder", model, b"\xff".join(parts))

    # Model bundles (src/folder/bundle.rs): the first byte tells the target to append the CRC-32
    # itself (odd) or to take the bytes as they are (even, the CRC already at the end).
    folder = os.path.join(models, "resenc_ct")
    files = [
        ("plans.json", minified(os.path.join(folder, "plans.json"))),
        ("dataset.json", minified(os.path.join(folder, "dataset.json"))),
        ("fold_0/nnunet_rt_export.json", minified(os.path.join(folder, "fold_0", "nnunet_rt_export.json"))),
        ("fold_0/model.onnx", b"\x08\x07"),
    ]
    body = bundle_body(files)
    write("bundle", "resenc_ct_crc_appended", b"\x01" + body)
    write("bundle", "resenc_ct_complete", b"\x00" + body + struct.pack("<I", zlib.crc32(body)))
    write("bundle", "cascade_prefix", b"\x01" + bundle_body([("plans.json", b"{}"), ("previous_stage/plans.json", b"{}")]))
    write("bundle", "empty", b"\x01" + bundle_body([]))

    # Metrics: dims, spacing, tolerance bytes, then voxels (see fuzz_targets/metrics.rs).
    write("metrics", "cube", bytes([2, 2, 2, 0, 0, 2, 1]) + bytes([1] * 27) + bytes([0] * 13 + [1] * 14))
    write("metrics", "aniso", bytes([4, 3, 1, 1, 2, 3, 2]) + bytes((i * 7) % 5 for i in range(2 * 5 * 4 * 2)))
    write("metrics", "lesion", bytes([5, 5, 5, 3, 3, 0, 3]) + bytes(2 if i % 17 == 0 else 1 for i in range(432)))
    write("metrics", "one_empty", bytes([1, 1, 1, 0, 0, 0, 1]) + bytes([1] * 8 + [0] * 8))


if __name__ == "__main__":
    sys.exit(main())
