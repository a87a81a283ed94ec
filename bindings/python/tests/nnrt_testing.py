"""Test support: fixture paths, a minimal NIfTI-1 reader (gzip + struct + numpy), Dice."""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = FIXTURES / "models"
CASES = FIXTURES / "cases"

# NIfTI-1 datatype code → numpy dtype (byte order applied by the reader).
_NIFTI_DTYPES = {
    2: "u1",
    4: "i2",
    8: "i4",
    16: "f4",
    64: "f8",
    256: "i1",
    512: "u2",
    768: "u4",
    1024: "i8",
    1280: "u8",
}


@dataclass
class Nifti:
    """A NIfTI-1 image: ``data`` indexed (z, y, x) (or (t, z, y, x)), x fastest in memory."""

    data: np.ndarray
    pixdim: tuple  # voxel size along x, y, z (float32 values as read)
    datatype: int


def read_nifti(path: Path) -> Nifti:
    """Reads a single-file NIfTI-1 image (``.nii`` or ``.nii.gz``), applying scl_slope/inter."""
    raw = gzip.open(path).read() if str(path).endswith(".gz") else Path(path).read_bytes()
    if len(raw) < 348:
        raise ValueError(f"{path}: too short for a NIfTI-1 header")
    for endian in "<>":
        if struct.unpack(endian + "i", raw[:4])[0] == 348:
            break
    else:
        raise ValueError(f"{path}: not a NIfTI-1 file (sizeof_hdr is not 348)")
    if raw[344:347] not in (b"n+1", b"ni1"):
        raise ValueError(f"{path}: bad NIfTI-1 magic {raw[344:348]!r}")
    dim = struct.unpack(endian + "8h", raw[40:56])
    datatype = struct.unpack(endian + "h", raw[70:72])[0]
    pixdim = struct.unpack(endian + "8f", raw[76:108])
    vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    scl_slope, scl_inter = struct.unpack(endian + "2f", raw[112:120])
    if datatype not in _NIFTI_DTYPES:
        raise ValueError(f"{path}: NIfTI datatype {datatype} is not supported by this reader")
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise ValueError(f"{path}: dim[0] = {ndim}")
    sizes = [d for d in dim[1 : ndim + 1]]
    dtype = np.dtype(_NIFTI_DTYPES[datatype]).newbyteorder(endian)
    count = int(np.prod(sizes))
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=vox_offset)
    # File order is x fastest: reversing the dims gives a C-order (…, z, y, x) array.
    data = data.reshape(sizes[::-1]).astype(dtype.newbyteorder("="))
    # scl_slope 0 means "no scaling" (NIfTI-1); (1, 0) is the identity.
    if scl_slope != 0.0 and (scl_slope != 1.0 or scl_inter != 0.0):
        data = data * np.float64(scl_slope) + np.float64(scl_inter)
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    return Nifti(data=np.ascontiguousarray(data), pixdim=tuple(pixdim[1:4]), datatype=datatype)


@dataclass
class Case:
    """One fixture case: the image (z, y, x) or (channels, z, y, x), its ITK geometry as
    SimpleITK reported it to nnU-Net, the reference segmentation and case.json."""

    case_id: str
    image: np.ndarray
    spacing: tuple
    origin: tuple
    direction: tuple
    reference: np.ndarray
    meta: dict

    @property
    def model_dir(self) -> Path:
        return MODELS / self.meta["model"]

    @property
    def predict_kwargs(self) -> dict:
        return {"step_size": self.meta["step_size"], "tta": self.meta["use_mirroring"]}


def load_case(case_id: str) -> Case:
    directory = CASES / case_id
    meta = json.loads((directory / "reference" / "case.json").read_text())
    channels = [read_nifti(directory / "input" / name).data for name in meta["input_files"]]
    image = channels[0] if len(channels) == 1 else np.stack(channels)
    sitk = meta["sitk"]
    reference = read_nifti(directory / "reference" / "seg.nii.gz").data
    return Case(
        case_id=case_id,
        image=image,
        spacing=tuple(sitk["spacing"]),
        origin=tuple(sitk["origin"]),
        direction=tuple(sitk["direction"]),
        reference=reference,
        meta=meta,
    )


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    """Dice of ``label`` between two label maps; 1.0 when both are empty."""
    x, y = a == label, b == label
    total = int(x.sum()) + int(y.sum())
    return 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total
