"""Segments a synthetic CT-like volume with a fixture model: needs only numpy and the library.

    python bindings/python/examples/segment_synthetic.py                    # fixture multi-task model
    python bindings/python/examples/segment_synthetic.py MODEL_DIR --no-tta
    python bindings/python/examples/segment_synthetic.py model.nnrt          # a bundle, from memory
"""

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import nnunet_rt
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import nnunet_rt

DEFAULT_MODEL = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "models" / "multitask_ct"


def synthetic_ct(shape=(12, 46, 50)):
    """int16 (z, y, x) volume: air around a soft-tissue body with a brighter ellipsoid in it."""
    z, y, x = np.indices(shape, dtype=np.float64)
    c = [(s - 1) / 2 for s in shape]
    body = ((y - c[1]) / (0.45 * shape[1])) ** 2 + ((x - c[2]) / (0.45 * shape[2])) ** 2 < 1
    organ = ((z - c[0]) / (0.3 * shape[0])) ** 2 + ((y - c[1]) / 8) ** 2 + ((x - c[2] - 5) / 10) ** 2 < 1
    volume = np.full(shape, -1000.0)
    volume[body] = 40.0
    volume[organ] = 110.0
    volume += np.random.default_rng(0).normal(0, 10, shape)
    return volume.astype(np.int16)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL),
                        help="nnU-Net model folder, or a .nnrt bundle (nnunet-rt bundle)")
    parser.add_argument("--no-tta", action="store_true", help="disable mirroring (faster)")
    args = parser.parse_args(argv)

    volume = synthetic_ct()                      # indexed (z, y, x): x fastest, like ITK/NIfTI
    spacing = (0.8, 0.8, 2.5)                    # (x, y, z) in mm, ITK order
    origin = (-20.0, -18.4, 100.0)               # LPS, mm

    def progress(stage, fraction):
        print(f"\r{stage:>10} {fraction:6.1%}", end="", flush=True)
        return True                              # False would cancel (raises nnunet_rt.Cancelled)

    if args.model.endswith(".nnrt"):
        # As a host that decrypts its models would: the bytes are loaded without touching the disk.
        opened = nnunet_rt.Model.from_bundle_bytes(Path(args.model).read_bytes())
    else:
        opened = nnunet_rt.Model(args.model)
    with opened as model:
        print(f"{nnunet_rt.library_version()}\nmodel: labels {model.labels}, classes {model.classes}, "
              f"folds {model.folds}, spacing {model.spacing}, patch {model.patch_size}")
        prediction = model.predict(volume, spacing, origin, tta=not args.no_tta, progress=progress)
    print()
    print("label voxels:", prediction.label_counts())
    if prediction.predicted_class is not None:
        p = prediction.class_probabilities[prediction.predicted_class]
        print(f"predicted class: {prediction.predicted_class_name} (p = {p:.3f})")
    print("timings (ms):", {k: round(v, 1) for k, v in prediction.timings_ms.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
